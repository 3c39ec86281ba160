"""Checkpoints: what they hold, and writing them so that a crash never leaves a broken one.

A checkpoint is a plain dict of tensors and Python values, so it loads with
``torch.load(path, weights_only=True)``: nobody has to unpickle arbitrary objects.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch

import blowtorch
from blowtorch.errors import CheckpointError, TrainingError
from blowtorch.optim import OptimizerSet
from blowtorch.rng import capture_rng_state
from blowtorch.state import TrainState

FORMAT = "blowtorch-checkpoint"
FORMAT_VERSION = 1
BEST = "best.pt"
LATEST = "latest.pt"


def build_checkpoint(
    *,
    model: torch.nn.Module,
    optimizers: OptimizerSet,
    state: TrainState,
    metrics: dict[str, float],
    config: dict[str, Any],
    sacred_run_id: Any,
) -> dict[str, Any]:
    """Everything needed to continue the run after the epoch ``state.epoch``."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": model.state_dict(),
        "epoch": state.epoch,
        "metrics": dict(metrics),
        **optimizers.state_dict(),
        "state": state.as_dict(),
        "rng": capture_rng_state(),
        "config": config,
        "sacred_run_id": None if sacred_run_id is None else str(sacred_run_id),
        "versions": {"blowtorch": blowtorch.__version__, "torch": str(torch.__version__)},
    }


def check_finite_parameters(model: torch.nn.Module, epoch: int) -> None:
    """Refuse to checkpoint a model whose parameters are NaN or infinite (one device read)."""
    parameters = [p.detach() for p in model.parameters() if p.is_floating_point()]
    if not parameters:
        return
    finite = torch.stack([torch.isfinite(p).all() for p in parameters]).all()
    if not bool(finite):
        bad = [name for name, p in model.named_parameters() if p.is_floating_point() and not torch.isfinite(p).all()]
        raise TrainingError(
            f"after epoch {epoch} the model parameters {bad[:5]}{' ...' if len(bad) > 5 else ''} hold NaN or inf "
            f"values; no checkpoint was written. Lower the learning rate or clip gradients"
        )


class CheckpointWriter:
    """Writes ``latest.pt`` every epoch and ``best.pt`` when the checkpoint metric improved."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def write(self, payload: dict[str, Any], is_best: bool) -> None:
        latest = self.directory / LATEST
        save_atomic(payload, latest)
        if is_best:
            _replace_with_copy(latest, self.directory / BEST)


def save_atomic(payload: dict[str, Any], path: Path) -> None:
    """Write ``payload`` to ``path`` so that ``path`` is always either the old or the new file.

    Temp file in the same directory, flush and fsync, ``os.replace``, fsync of the directory.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise CheckpointError(f"could not write the checkpoint {path}: {error}") from error
        raise
    _fsync_directory(path.parent)


def _replace_with_copy(source: Path, target: Path) -> None:
    """Make ``target`` a copy of ``source``, atomically: a hard link where possible (no extra disk)."""
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    try:
        try:
            os.link(source, temporary)
        except OSError:  # file systems without hard links
            shutil.copyfile(source, temporary)
            with open(temporary, "rb+") as handle:
                os.fsync(handle.fileno())
        os.replace(temporary, target)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise CheckpointError(f"could not write the checkpoint {target}: {error}") from error
    _fsync_directory(target.parent)


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a blowtorch checkpoint with ``weights_only=True``; say clearly what is wrong with a bad one."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(error).__name__}: {error})") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a blowtorch checkpoint (it has no '{FORMAT}' format marker)")
    return payload
