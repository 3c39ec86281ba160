"""Metrics into sacred: ``<phase>.<name>`` entries, at the epoch (per-step phases: the global step)."""

from __future__ import annotations

from typing import Any, Mapping

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
