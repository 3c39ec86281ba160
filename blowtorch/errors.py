"""The errors blowtorch raises.

Every error is a :class:`BlowtorchError` and also subclasses the builtin exception a user would
catch for that kind of problem, so ``except ValueError`` keeps working::

    BlowtorchError
    ├── ConfigError          (ValueError)    a config file, scope, override or seed that cannot work
    ├── ConfigKeyError       (KeyError)      run["a.b"] asked for a key the config does not have
    ├── MissingFileError     (FileNotFoundError) a config file or resume path that does not exist
    ├── MissingExtraError    (ImportError)   an optional integration whose package is not installed
    ├── UsageError           (TypeError)     a decorated function, or what it returned, is of the wrong kind
    ├── OptionError          (ValueError)    an argument of run(...) that cannot work (device, metric, loader, ...)
    │   └── LoggerStartError                 a logger given with loggers=[...] failed in on_start
    ├── TrainingError        (RuntimeError)  training could not go on
    │   └── NonFiniteLossError               the loss became NaN or infinite
    ├── CheckpointError      (RuntimeError)  a checkpoint that cannot be written, read or applied
    └── DatabaseError        (ConnectionError) a MongoDB observer that cannot be reached or used

Messages say what was wrong, what was expected, and how to fix it.
"""

from __future__ import annotations


class BlowtorchError(Exception):
    """Base class of every error raised by blowtorch."""


class ConfigError(BlowtorchError, ValueError):
    """A config file, config scope, command-line override or seed that cannot be used."""


class ConfigKeyError(BlowtorchError, KeyError):
    """A config key that does not exist."""

    def __str__(self) -> str:
        # KeyError.__str__ shows the repr of its argument; our argument is a full sentence.
        return str(self.args[0]) if self.args else ""


class MissingFileError(BlowtorchError, FileNotFoundError):
    """A file blowtorch was asked to read does not exist."""


class MissingExtraError(BlowtorchError, ImportError):
    """An optional integration (TensorBoard, wandb) whose package is not installed."""


class UsageError(BlowtorchError, TypeError):
    """A decorated function with an unusable signature, or a return value of the wrong kind."""


class OptionError(BlowtorchError, ValueError):
    """An argument of ``run(...)`` that cannot work: a device, a metric name, an empty loader, ..."""


class LoggerStartError(OptionError):
    """A logger raised in ``on_start``; the run stops before training."""


class TrainingError(BlowtorchError, RuntimeError):
    """Training cannot go on."""


class NonFiniteLossError(TrainingError):
    """The optimized loss became NaN or infinite."""


class CheckpointError(BlowtorchError, RuntimeError):
    """A checkpoint that cannot be written, read or applied to this model and optimizers."""


class DatabaseError(BlowtorchError, ConnectionError):
    """A MongoDB observer whose server cannot be reached, or whose address cannot be used."""
