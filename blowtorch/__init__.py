"""blowtorch: a small PyTorch training framework on a real sacred Experiment."""

import blowtorch.sacred_bridge  # noqa: F401  (first: imports sacred without its pkg_resources warning)

from blowtorch.errors import (
    BlowtorchError,
    CheckpointError,
    ConfigError,
    ConfigKeyError,
    DatabaseError,
    MissingExtraError,
    MissingFileError,
    NonFiniteLossError,
    OptionError,
    TrainingError,
    UsageError,
)

__version__ = "0.6.0"

from blowtorch.loggers.base import BaseLogger, RunInfo  # noqa: E402  (after __version__: checkpoint reads it)
from blowtorch.run import Run  # noqa: E402

__all__ = [
    "BaseLogger",
    "BlowtorchError",
    "CheckpointError",
    "ConfigError",
    "ConfigKeyError",
    "DatabaseError",
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
