"""blowtorch: a small PyTorch training framework on a real sacred Experiment.

``Run``, ``BaseLogger`` and ``RunInfo`` are imported on first use (PEP 562): ``import blowtorch``
alone, and the ``blowtorch`` command that reads run directories, do not import torch. The errors
are plain classes and imported at once.
"""

import importlib
import typing

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

if typing.TYPE_CHECKING:
    from blowtorch.loggers.base import BaseLogger, RunInfo
    from blowtorch.run import Run

# name -> the module it comes from, imported when the name is first looked up
_ON_FIRST_USE = {"Run": "blowtorch.run", "BaseLogger": "blowtorch.loggers.base", "RunInfo": "blowtorch.loggers.base"}

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


def __getattr__(name: str) -> typing.Any:
    module = _ON_FIRST_USE.get(name)
    if module is None:
        raise AttributeError(f"module 'blowtorch' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once: later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_ON_FIRST_USE))
