"""Metrics into sacred: ``<phase>.<name>`` entries, at the epoch (per-step phases: the global step)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

from sacred.observers import MongoObserver

from blowtorch.loggers.base import BaseLogger, is_step_phase


class SacredLogger(BaseLogger):
    """Logs ``<phase>.<name>`` to the sacred run, which hands it to every observer (metrics.json, MongoDB)."""

    def __init__(self, sacred_run: Any) -> None:
        self._run = sacred_run

    def log_metrics(self, metrics: Mapping[str, float], phase: str, epoch: int, step: int) -> None:
        x = step if is_step_phase(phase) else epoch
        for name, value in metrics.items():
            # Python floats only: sacred hands tensors through unconverted and they poison observers.
            self._run.log_scalar(f"{phase}.{name}", float(value), x)


RUN_FILES = ("config.yaml", "log.txt", "model-summary.txt")


def store_run_files(sacred_run: Any, run_dir: Path, checkpoints: Sequence[str]) -> None:
    """The run directory's small files as artifacts of the sacred run (every observer), and the
    checkpoints asked for (``best``, ``latest``) in the databases only: they can be gigabytes, and
    the run directory already holds them."""
    for name in RUN_FILES:
        if (run_dir / name).is_file():
            sacred_run.add_artifact(str(run_dir / name), name)
    for which in checkpoints:
        path = run_dir / "checkpoints" / f"{which}.pt"
        if not path.is_file():
            continue
        for observer in sacred_run.observers:
            if isinstance(observer, MongoObserver) and observer not in sacred_run._failed_observers:
                try:
                    observer.artifact_event(path.name, str(path), {"checkpoint": which}, "application/octet-stream")
                except Exception as error:  # reported by the observer; the run itself is done
                    warnings.warn(f"could not upload {path.name} to MongoDB: {type(error).__name__}: {error}", RuntimeWarning, stacklevel=2)
