"""How far a run got: epochs done, the checkpoint metric's best value, and metrics from ``log.txt``.

These read what a run leaves besides its sacred record: the checkpoints (their manifest, and the
training state of the newest one, memory-mapped so that a large model is not read) and ``log.txt``,
the only record of a run started with ``-u``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blowtorch.checkpoint_files import CheckpointStore
from blowtorch.loggers.base import is_step_phase
from blowtorch.rundir import CHECKPOINTS

# A metrics line of log.txt (blowtorch.loggers.textfile): "[time] epoch 3 train loss=0.25  accuracy=0.9"
_LOG_LINE = re.compile(r"^\[[^\]]*\] (epoch|step) (\d+) (\S+) +(\S+=.*)$")
_PAIR = re.compile(r"(\S+?)=(\S+)")


@dataclass(frozen=True)
class Best:
    """The checkpoint metric's best value and the epoch it was reached in."""

    metric: str | None
    value: float | None
    epoch: int

    @classmethod
    def from_result(cls, result: Any) -> Best | None:
        """From a completed run's result (blowtorch's summary)."""
        if not isinstance(result, Mapping) or not isinstance(result.get("best_epoch"), int):
            return None
        return cls(result.get("checkpoint_metric"), _float(result.get("best_value")), result["best_epoch"])

    @classmethod
    def from_json(cls, record: Any) -> Best | None:
        """From ``status.json``'s or the sacred info's ``best``: ``{"metric", "value", "epoch"}``."""
        if not isinstance(record, Mapping) or not isinstance(record.get("epoch"), int):
            return None
        return cls(record.get("metric"), _float(record.get("value")), record["epoch"])

    def as_json(self) -> dict[str, Any]:
        return {"metric": self.metric, "value": self.value, "epoch": self.epoch}

    def __str__(self) -> str:
        value = "?" if self.value is None else f"{self.value:.4g}"
        return f"{self.metric or '?'} {value} @ {self.epoch}"


def epochs_logged(steps_by_metric: Mapping[str, Iterable[int]]) -> int:
    """The number of epochs with logged metrics: one more than the last epoch of any per-epoch metric."""
    last = -1
    for name, steps in steps_by_metric.items():
        if not is_step_phase(name.partition(".")[0]):
            last = max([last, *steps])
    return last + 1


def epochs_from_checkpoints(run_dir: Path) -> int:
    """Epochs done by the newest checkpoint, by its manifest entry (0 without one)."""
    entries = CheckpointStore(run_dir / CHECKPOINTS).manifest_entries().values()
    done = [int(e["epoch"]) + (0 if e.get("mid_epoch") else 1) for e in entries if isinstance(e.get("epoch"), int)]
    return max(done, default=0)


def best_from_checkpoint(run_dir: Path) -> Best | None:
    """The best so far as the newest readable checkpoint holds it (a killed run wrote no final record)."""
    import torch

    for path in CheckpointStore(run_dir / CHECKPOINTS).newest_first():
        try:
            # mmap: the tensors stay on disk; only the small training state is read
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("state", {})
        except Exception:  # a corrupt or foreign file: the next one may do (show names it)
            continue
        return Best(state.get("checkpoint_metric"), _float(state.get("best_value")), state["best_epoch"]) if isinstance(
            state.get("best_epoch"), int
        ) else None
    return None


def log_file_metrics(run_dir: Path) -> dict[str, dict[int, float]]:
    """The metrics of ``log.txt`` (six significant digits) as ``<phase>.<name>`` -> x -> value; a later line
    for the same x wins, as after a rewind."""
    metrics: dict[str, dict[int, float]] = {}
    try:
        lines = (run_dir / "log.txt").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return metrics
    for line in lines:
        match = _LOG_LINE.match(line)
        if match is None:
            continue
        _, x, phase, pairs = match.groups()
        for name, value in _PAIR.findall(pairs):
            number = _float(value)
            if number is not None:
                metrics.setdefault(f"{phase}.{name}", {})[int(x)] = number
    return {name: dict(sorted(values.items())) for name, values in metrics.items()}


def _float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number
