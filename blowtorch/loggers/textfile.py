"""``log.txt``: one readable line per epoch and phase, plus start and end lines."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from blowtorch.loggers.base import BaseLogger, RunInfo, is_step_phase
from blowtorch.rundir import RunDirectory


def format_metrics(metrics: Mapping[str, float]) -> str:
    return "  ".join(f"{name}={value:.6g}" for name, value in metrics.items())


class TextFileLogger(BaseLogger):
    """Appends to the run directory's ``log.txt``; every line starts with the local time."""

    def __init__(self, run_dir: RunDirectory) -> None:
        self.run_dir = run_dir

    def note(self, message: str) -> None:
        """A free-form line (start, end, errors, how to resume)."""
        stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        for line in message.splitlines() or [""]:
            self.run_dir.append_log(f"[{stamp}] {line}")

    def on_start(self, run: RunInfo) -> None:
        verb = f"resumed at epoch {run.start_epoch}" if run.resumed else "started"
        run_id = "unobserved" if run.sacred_run_id is None else f"sacred run {run.sacred_run_id}"
        self.note(
            f"run {run.name} {verb}: experiment '{run.experiment_name}', {run_id}, "
            f"seed {run.config.get('seed')}, device {run.device}"
        )

    def log_metrics(self, metrics: Mapping[str, float], phase: str, epoch: int, step: int) -> None:
        where = f"step {step}" if is_step_phase(phase) else f"epoch {epoch}"
        self.note(f"{where} {phase:<5} {format_metrics(metrics)}")

    def on_finish(self, status: str) -> None:
        self.note(f"run ended: {status}")
