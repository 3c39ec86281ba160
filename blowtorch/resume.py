"""Resuming: finding the checkpoint to continue from, and replaying the epoch it stopped in.

Resuming inside an epoch replays it: the random state from the start of the epoch is restored
before the data iterator is created, the batches already trained on are skipped, and the random
state from the moment of the checkpoint is restored, so the data order and every later random
draw match the run that was interrupted. :class:`TrainingBatches` does that and hands the loop
its batches; the loop itself does not know whether an epoch is fresh or replayed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from blowtorch.checkpoint import load_checkpoint
from blowtorch.checkpoint_files import CheckpointStore
from blowtorch.errors import CheckpointError, MissingFileError
from blowtorch.rng import capture_rng_state, restore_rng_state
from blowtorch.rundir import CHECKPOINTS
from blowtorch.state import EpochPosition, TrainState
from blowtorch.user_warnings import warn


@dataclass(frozen=True)
class Resumption:
    """What the loop continues from: the random state when a checkpoint was written and, if it was
    written inside an epoch, the position there (``None``: after an epoch)."""

    rng: dict[str, Any]
    position: EpochPosition | None = None

    @property
    def validation_left(self) -> bool:
        """The checkpoint was written after the training pass: only validation is left of the epoch."""
        return self.position is not None and self.position.train_metrics is not None


class TrainingBatches:
    """The training batches of one epoch as ``(batch_index, batch)``, fresh or replayed.

    ``start_rng`` is the random state from before the loader's iterator was created: a checkpoint
    inside this epoch stores it so that a resume can replay the same data order. ``done`` is the
    number of batches a replayed epoch had already trained on (they are skipped).
    """

    def __init__(
        self, loader: Iterable[Any], generators: Mapping[str, torch.Generator], epoch: int, replay: Resumption | None
    ) -> None:
        position = replay.position if replay is not None else None
        if replay is None or position is None:
            self.start_rng, self.done = capture_rng_state(generators), 0
            self._batches = iter(loader)
            return
        assert position.epoch_start_rng is not None, "an in-epoch checkpoint holds the epoch's start state"
        self.start_rng, self.done = position.epoch_start_rng, position.batches_done
        restore_rng_state(self.start_rng, generators)
        self._batches = iter(loader)
        _skip(self._batches, self.done, epoch)
        restore_rng_state(replay.rng, generators)

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        return enumerate(self._batches, start=self.done)


def _skip(batches: Iterator[Any], count: int, epoch: int) -> None:
    for done in range(count):
        try:
            next(batches)
        except StopIteration:
            raise CheckpointError(
                f"the checkpoint stopped after {count} training batches of epoch {epoch}, but train_loader yields "
                f"only {done}; resume with the same training data and batch size"
            ) from None


@dataclass(frozen=True)
class ResumePoint:
    """A loaded checkpoint and the run directory the resumed run continues in (None: a new one)."""

    path: Path
    checkpoint: dict[str, Any]
    run_dir: Path | None

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.checkpoint["config"])

    def train_state(self) -> TrainState:
        return TrainState.resumed_from(self.checkpoint)

    def resumption(self) -> Resumption:
        position = self.checkpoint.get("position")
        return Resumption(self.checkpoint["rng"], None if position is None else EpochPosition.from_dict(position))

    @property
    def comment(self) -> str:
        """What the resumed run continues, as its sacred comment (``meta.comment``, Omniboard's notes) says
        unless the user gave one: ``resumed from run 3 at epoch 5`` (the first epoch it trains)."""
        parent = self.checkpoint.get("sacred_run_id")
        origin = f"run {parent}" if parent is not None else "an unrecorded run"
        return f"resumed from {origin} at epoch {self.train_state().epoch}"

    @property
    def description(self) -> str:
        position = self.checkpoint.get("position")
        where = f"inside epoch {self.checkpoint['epoch']}" if position else f"after epoch {self.checkpoint['epoch']}"
        return f"{self.path} ({where}, global step {self.checkpoint['state']['global_step']})"


def find_resume_point(path: str | Path) -> ResumePoint:
    """``path`` is a run directory (its newest intact checkpoint) or a checkpoint file."""
    path = Path(path).expanduser().absolute()  # recorded in info.resumed_from and the result: never relative
    if not path.exists():
        raise MissingFileError(
            f"resume path '{path}' does not exist; pass a run directory (e.g. train_logs/<run>) or a checkpoint "
            f"file (e.g. train_logs/<run>/checkpoints/latest.pt)"
        )
    if path.is_file():
        run_dir = path.parent.parent if path.parent.name == CHECKPOINTS else None
        return ResumePoint(path, load_checkpoint(path), run_dir)
    directory = path / CHECKPOINTS if (path / CHECKPOINTS).is_dir() else path
    candidates = CheckpointStore(directory).newest_first()
    if not candidates:
        raise CheckpointError(
            f"resume path '{path}' holds no checkpoints (no *.pt in {directory}); pass a run directory that "
            f"has a checkpoints/ folder, or a checkpoint file"
        )
    problems: list[str] = []
    for candidate in candidates:
        try:
            checkpoint = load_checkpoint(candidate)
        except CheckpointError as error:
            problems.append(str(error))
            continue
        if problems:
            warn(
                f"could not use {candidates[0].name}: {problems[0]}. Resuming from the newest intact checkpoint "
                f"instead: {candidate}",
                RuntimeWarning,
            )
        run_dir = directory.parent if directory.name == CHECKPOINTS else None
        return ResumePoint(candidate, checkpoint, run_dir)
    raise CheckpointError(f"no intact checkpoint in {directory}: " + "; ".join(problems))
