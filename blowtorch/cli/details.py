"""A run's details for ``show`` and ``diff``: its config, last and best metrics, checkpoints, resume command."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from blowtorch.checkpoint_files import MANIFEST, CheckpointStore, size_text
from blowtorch.cli.records import RunHistory
from blowtorch.errors import CheckpointError
from blowtorch.loggers.base import is_step_phase
from blowtorch.rundir import CHECKPOINTS


def run_config(history: RunHistory) -> tuple[dict[str, Any] | None, str]:
    """The resolved config of the run's newest sacred run and where it came from: the run directory's
    ``config.yaml``, else the file storage's ``config.json``; None (with the reason) if neither is readable."""
    try:
        config = yaml.safe_load((history.path / "config.yaml").read_text(encoding="utf-8"))
        if isinstance(config, dict):
            return config, "config.yaml"
        reason = "config.yaml does not hold a mapping"
    except FileNotFoundError:
        reason = "config.yaml is missing (the run was killed before it wrote it)"
    except (OSError, yaml.YAMLError) as error:
        reason = f"config.yaml cannot be read ({type(error).__name__})"
    stored = history.newest.stored
    if stored is not None and (config := stored.config()) is not None:
        return config, stored.relative("config.json")
    return None, reason


def dotted(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as ``{"model.layers": 3, ...}``."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping) and value:
            flat.update(dotted(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


@dataclass(frozen=True)
class EpochMetrics:
    """The per-epoch metrics of a run at its last epoch and at its best epoch (by the checkpoint metric)."""

    last_epoch: int | None
    last: dict[str, float]
    best_epoch: int | None
    best: dict[str, float]
    step_metrics: dict[str, int]  # per-step metrics (``train_step.*``): how many values each has

    @classmethod
    def of(cls, history: RunHistory) -> EpochMetrics:
        metrics = history.metrics()
        per_epoch = {n: v for n, v in metrics.items() if not is_step_phase(n.partition(".")[0])}
        last_epoch = max((x for values in per_epoch.values() for x in values), default=None)
        best = history.newest.best
        best_epoch = best.epoch if best is not None else None
        return cls(
            last_epoch,
            {n: v[last_epoch] for n, v in per_epoch.items() if last_epoch in v},
            best_epoch,
            {n: v[best_epoch] for n, v in per_epoch.items() if best_epoch in v},
            {n: len(v) for n, v in metrics.items() if n not in per_epoch},
        )


@dataclass(frozen=True)
class CheckpointFile:
    name: str
    size: str
    epoch: str
    step: str
    state: str  # "ok", "CORRUPT", "missing" or "not in manifest"
    detail: str | None  # what is wrong, for a file that is not ok


def checkpoints(run_dir: Path) -> tuple[list[CheckpointFile], str | None]:
    """The checkpoint files with their manifest entries, each verified; and a problem of the manifest itself."""
    directory = run_dir / CHECKPOINTS
    store = CheckpointStore(directory)
    entries = store.manifest_entries()
    problem = None
    if (directory / MANIFEST).exists() and not entries:
        problem = f"{CHECKPOINTS}/{MANIFEST} cannot be read: the files below are not verified"
    names = sorted({p.name for p in directory.glob("*.pt")} | set(entries)) if directory.is_dir() else []
    files = []
    for name in names:
        path, entry = directory / name, entries.get(name, {})
        epoch = f"{entry['epoch']}{' (inside)' if entry.get('mid_epoch') else ''}" if "epoch" in entry else "?"
        step = str(entry.get("global_step", "?"))
        if not path.is_file():
            files.append(CheckpointFile(name, "-", epoch, step, "missing", f"{name} is in {MANIFEST} but not on disk"))
            continue
        state, detail = ("ok", None) if entry else ("not in manifest", None)
        try:
            store.verify(path)
        except CheckpointError as error:
            state, detail = "CORRUPT", str(error)
        files.append(CheckpointFile(name, size_text(path.stat().st_size), epoch, step, state, detail))
    return files, problem


def resume_command(history: RunHistory) -> str:
    """The command that continues the run: its script (as sacred recorded it) with ``--resume``."""
    stored = next((leg.stored for leg in reversed(history.legs) if leg.stored is not None), None)
    run_dir = str(history.path)
    if stored is not None:
        experiment = stored.experiment
        base_dir, mainfile = experiment.get("base_dir"), experiment.get("mainfile")
        if base_dir and mainfile and Path(str(mainfile)).suffix == ".py":
            return shlex.join(["python", str(Path(str(base_dir)) / str(mainfile)), "--resume", run_dir])
        if stored.run:  # a notebook: no script file
            return f"run(..., resume={run_dir!r})"
    said = _resume_line_of_log(history.path)  # an unrecorded (-u) run said it when it was interrupted
    return said or shlex.join(["python", "<your script>", "--resume", run_dir])


def _resume_line_of_log(run_dir: Path) -> str | None:
    try:
        lines = (run_dir / "log.txt").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    said = [line.partition("To resume: ")[2] for line in lines if "To resume: " in line]
    return said[-1] if said else None
