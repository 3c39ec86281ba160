"""blowtorch: a small PyTorch training framework on a real sacred Experiment."""

from blowtorch._version import __version__
from blowtorch.errors import (
    BlowtorchError,
    CheckpointError,
    ConfigError,
    ConfigKeyError,
    DatabaseError,
    LoggerStartError,
    MissingExtraError,
    MissingFileError,
    NonFiniteLossError,
    OptionError,
    TrainingError,
    UsageError,
)
from blowtorch.loggers.base import BaseLogger, RunInfo
from blowtorch.run import Run

__all__ = [
    "BaseLogger",
    "BlowtorchError",
    "CheckpointError",
    "ConfigError",
    "ConfigKeyError",
    "DatabaseError",
    "LoggerStartError",
    "MissingExtraError",
    "MissingFileError",
    "NonFiniteLossError",
    "OptionError",
    "Run",
    "RunInfo",
    "TrainingError",
    "UsageError",
    "__version__",
]
