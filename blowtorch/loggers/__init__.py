"""Loggers receive every run's events and metrics; subclass :class:`BaseLogger` for your own.

``TensorBoardLogger`` and ``WandbLogger`` import their packages only when constructed, so
blowtorch works without them; a missing one names the extra to install.
"""

from blowtorch.loggers.base import COMPLETED, FAILED, INTERRUPTED, BaseLogger, RunInfo, is_step_phase
from blowtorch.loggers.tensorboard import TensorBoardLogger
from blowtorch.loggers.wandb import WandbLogger

__all__ = [
    "BaseLogger",
    "COMPLETED",
    "FAILED",
    "INTERRUPTED",
    "RunInfo",
    "TensorBoardLogger",
    "WandbLogger",
    "is_step_phase",
]
