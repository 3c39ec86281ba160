"""The options of ``run(...)``, declared once: their names, types, defaults and checks.

``Run.__call__`` spells the same names and defaults in its signature (so that editors and type
checkers show them) and hands them over with :meth:`RunOptions.from_arguments`; a test fails
when the signature, this class and the README's run options table disagree. The set-up, the job
and the loop all read this one object.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from blowtorch.compilation import compile_arguments
from blowtorch.errors import OptionError
from blowtorch.loggers.base import BaseLogger
from blowtorch.precision import Precision
from blowtorch.rundir import check_run_name
from blowtorch.update import GRADIENT_CLIP_ALGORITHMS, UpdateRule
from blowtorch.user_warnings import warn


@dataclass(frozen=True)
class RunOptions:
    """The options of ``run(...)`` after ``model``, ``train_loader`` and ``val_loader``."""

    loggers: Sequence[BaseLogger] | None = None
    max_epochs: int = 1
    use_gpu: bool = True
    gpu_id: int = 0
    resume: str | Path | None = None
    save_path: str | Path = "train_logs"
    run_name: str | None = None
    optimize_metric: str | None = None
    checkpoint_metric: str | None = None
    smaller_is_better: bool = True
    optimize_first: bool = False
    detect_anomalies: bool = False
    checkpoint_every_n_steps: int | None = None
    keep_last_epochs: int = 0
    log_every_n_steps: int | None = None
    upload_checkpoints: str | Sequence[str] | None = None
    progress: bool = True
    precision: str | int = "32"
    accumulate_grad_batches: int = 1
    gradient_clip_val: float | None = None
    gradient_clip_algorithm: str = "norm"
    compile: bool | Mapping[str, Any] = False
    find_unused_parameters: bool = False
    sync_batchnorm: bool = False

    @classmethod
    def from_arguments(cls, arguments: Mapping[str, Any]) -> RunOptions:
        """The options among ``arguments``, e.g. the ``locals()`` of ``run(...)``."""
        return cls(**{f.name: arguments[f.name] for f in dataclasses.fields(cls) if f.name in arguments})

    def check(self, resuming: bool) -> None:
        """Raise :class:`OptionError` for an option that cannot work; warn about a surprising one."""
        _check_int("max_epochs", self.max_epochs, 1, "the total number of epochs, counted from 0")
        for name in (
            "use_gpu", "smaller_is_better", "optimize_first", "detect_anomalies", "progress", "find_unused_parameters", "sync_batchnorm",
        ):  # fmt: skip
            value = getattr(self, name)
            if not isinstance(value, bool):  # "False" is a true value: a string here would silently mean True
                raise OptionError(f"{name} must be True or False, got {value!r}")
        if self.resume is not None and not isinstance(self.resume, (str, Path)):
            raise OptionError(f"resume must be a run directory or checkpoint path (str or pathlib.Path), got {self.resume!r}")
        _check_int("keep_last_epochs", self.keep_last_epochs, 0, "how many epoch-<n>.pt files to keep")
        if self.checkpoint_every_n_steps is not None:
            _check_int("checkpoint_every_n_steps", self.checkpoint_every_n_steps, 1, "or None for epoch ends only")
        if self.log_every_n_steps is not None:
            _check_int("log_every_n_steps", self.log_every_n_steps, 1, "or None for epoch means only")
        self.checkpoints_to_upload()
        self.update_rule(scaler=None)
        compile_arguments(self.compile)
        if self.run_name is not None:
            check_run_name(self.run_name)
        if self.max_epochs == 1 and not self.optimize_first and not resuming:
            warn(
                "max_epochs=1 with optimize_first=False runs only the baseline epoch 0, which does not update the "
                "model; pass max_epochs > 1 or optimize_first=True to train"
            )

    def update_rule(self, scaler: torch.amp.GradScaler | None) -> UpdateRule:
        """The update options, checked; ``scaler`` is the float16 loss scaler, if any."""
        Precision.parse(self.precision)
        _check_int("accumulate_grad_batches", self.accumulate_grad_batches, 1, "the training batches per optimizer step")
        clip = self.gradient_clip_val
        if clip is not None and (isinstance(clip, bool) or not isinstance(clip, (int, float)) or not 0 < clip < math.inf):
            raise OptionError(f"gradient_clip_val must be a positive number (or None for no clipping), got {clip!r}")
        if self.gradient_clip_algorithm not in GRADIENT_CLIP_ALGORITHMS:
            raise OptionError(
                f"gradient_clip_algorithm must be one of {list(GRADIENT_CLIP_ALGORITHMS)}, got {self.gradient_clip_algorithm!r}"
            )
        return UpdateRule(scaler, self.accumulate_grad_batches, None if clip is None else float(clip), self.gradient_clip_algorithm)

    def checkpoints_to_upload(self) -> list[str]:
        """Which checkpoints go to the databases: a list of 'best' and 'latest'."""
        chosen = [self.upload_checkpoints] if isinstance(self.upload_checkpoints, str) else list(self.upload_checkpoints or ())
        unknown = [c for c in chosen if c not in ("best", "latest")]
        if unknown:
            raise OptionError(f"upload_checkpoints takes 'best', 'latest' or both in a list, got {self.upload_checkpoints!r}")
        return chosen


def _check_int(name: str, value: Any, minimum: int, meaning: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise OptionError(f"{name} must be an int >= {minimum} ({meaning}), got {value!r}")


def check_loader(label: str, loader: Any) -> None:
    """A loader must be an iterable of batches; one with a length must not be empty."""
    if loader is None:
        if label == "train_loader":
            raise OptionError("train_loader is None; pass a DataLoader (or any iterable of batches) to train on")
        return
    if not hasattr(loader, "__iter__"):
        raise OptionError(f"{label} must be a DataLoader or another iterable of batches, got {type(loader).__name__}")
    if isinstance(loader, Iterator):  # a generator: its first pass would be its last
        raise OptionError(
            f"{label} is a {type(loader).__name__}, which can be iterated only once, but it is read every epoch (and "
            f"replayed on resume); pass something re-iterable: a DataLoader, a list of batches, or an object whose "
            f"__iter__ starts a new pass"
        )
    try:
        length = len(loader)
    except TypeError:
        return  # an iterable without a length; emptiness is checked after its first pass
    if length == 0:
        raise OptionError(f"{label} is empty (len 0); give it a dataset with at least one sample (and check drop_last)")
