"""The logger interface: a class whose methods all do nothing until a subclass overrides them.

Like sacred's ``RunObserver``, a logger only *receives* events; it never changes training. Every
logger is called through the fan-out (:mod:`blowtorch.loggers.fanout`), in order: ``on_start``
once when the set-up is done, then per epoch ``log_metrics`` for each phase (from the loop) and
``on_epoch_end``, and finally ``on_finish`` exactly once (from the job), also after a failure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: `blowtorch runs` and the other commands never import torch
    import torch

RUNNING = "RUNNING"
COMPLETED = "COMPLETED"
FAILED = "FAILED"
INTERRUPTED = "INTERRUPTED"


def is_step_phase(phase: str) -> bool:
    """Phases ending in ``_step`` (``train_step``, ``lr_step``) are per step: their x axis is the global step."""
    return phase.endswith("_step")


@dataclass(frozen=True)
class RunInfo:
    """What a logger learns about the run when it starts."""

    run_dir: Path
    name: str  # the run directory's name
    config: Mapping[str, Any]  # the resolved config, seed included
    model: torch.nn.Module
    device: torch.device
    sacred_run_id: Any  # None when the run is unobserved
    experiment_name: str
    resumed: bool = False
    start_epoch: int = 0
    start_step: int = 0


class BaseLogger:
    """Subclass this and override what you need; every method does nothing by default.

    ``phase`` is ``"train"`` or ``"val"`` for per-epoch means, ``"lr"`` for the learning rates of
    the epoch, and ``"train_step"`` / ``"lr_step"`` for single steps when ``log_every_n_steps``
    is set. ``metrics`` maps metric names (as the step returned them, without the phase) to
    Python floats, NaN and inf included. Per-epoch phases belong on the epoch axis, per-step
    phases on the global-step axis (:func:`is_step_phase`).
    """

    def on_start(self, run: RunInfo) -> None:
        """The run starts (or resumes); the run directory exists."""

    def log_metrics(self, metrics: Mapping[str, float], phase: str, epoch: int, step: int) -> None:
        """One phase's metrics: ``epoch`` counts from 0, ``step`` is the global training step."""

    def on_epoch_end(self, epoch: int, step: int) -> None:
        """Epoch ``epoch`` is over: its metrics were logged and its checkpoint written."""

    def on_finish(self, status: str) -> None:
        """The run ended with ``status``: ``"COMPLETED"``, ``"FAILED"`` or ``"INTERRUPTED"``."""
