"""The loop's ``save_checkpoint``: what goes into a checkpoint, and who writes it.

Rank 0 (or the only process) has a :class:`CheckpointWriter`: it builds the payload and has the
run directory's :class:`~blowtorch.checkpoint_files.CheckpointStore` serialise it; a background
thread (:mod:`blowtorch.checkpoint_thread`) makes it durable and puts it in place. Under torchrun
the other ranks have a :class:`SendRandomState` instead: every rank calls its writer at the same
points, and theirs send their random state to rank 0's checkpoint.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any

import torch

from blowtorch.checkpoint import build_checkpoint, check_finite_parameters
from blowtorch.checkpoint_files import CheckpointStore
from blowtorch.checkpoint_thread import BackgroundFinish
from blowtorch.distributed import Distributed
from blowtorch.interrupt import Interrupted
from blowtorch.optim import OptimizerSet
from blowtorch.rundir import plain_config
from blowtorch.state import EpochPosition, TrainState
from blowtorch.user_warnings import warn

if TYPE_CHECKING:  # the record's module belongs to the sacred bridge, imported when a Run is made
    from blowtorch.sacred_bridge.record import RunRecord


class SendRandomState:
    """A rank's part in rank 0's checkpoint: its random states (every rank calls the writer at the same points)."""

    def __init__(self, distributed: Distributed) -> None:
        self.distributed = distributed

    def __call__(
        self, state: TrainState, rng: dict[str, Any], *, position: EpochPosition | None = None, is_best: bool = False
    ) -> None:
        self.distributed.gather(_rank_random_state(rng, position))


def _rank_random_state(rng: dict[str, Any], position: EpochPosition | None) -> dict[str, Any]:
    return {"rng": rng, "epoch_start_rng": None if position is None else position.epoch_start_rng}


class CheckpointWriter:
    """The loop's ``save_checkpoint``: builds the payload and has the run directory's store write it.

    The call returns once the payload is serialised into a temp file; a background thread makes it
    durable and puts it in place (:mod:`blowtorch.checkpoint_thread`). ``with`` the writer around
    training, so that the end of training waits for the last write and raises its error.
    """

    def __init__(
        self,
        store: CheckpointStore,
        model: torch.nn.Module,
        optimizers: OptimizerSet,
        config: dict[str, Any],
        record: RunRecord,
        distributed: Distributed | None = None,
    ) -> None:
        self.distributed = distributed
        self.store = store
        self.model = model
        self.optimizers = optimizers
        self.config = config
        self.command_line = plain_config(record.command_line)
        self.run_id = record.id
        self.finishing = BackgroundFinish()
        self.in_place_at_epoch_end = False  # wait for an epoch end's write instead of training on meanwhile

    def __call__(
        self, state: TrainState, rng: dict[str, Any], *, position: EpochPosition | None = None, is_best: bool = False
    ) -> None:
        ranks = None if self.distributed is None else self.distributed.gather(_rank_random_state(rng, position))
        self.finishing.wait()  # the previous checkpoint is in place (or its error raised) before the next starts
        check_finite_parameters(self.model, state.epoch)
        payload = build_checkpoint(
            model=self.model,
            optimizers=self.optimizers,
            state=state,
            position=position,
            rng=rng,
            config=self.config,
            command_line=self.command_line,
            sacred_run_id=self.run_id,
        )
        if ranks is not None:
            payload["ranks"] = ranks  # every rank's random state, in rank order
        pending = self.store.write(payload, epoch_end=position is None, is_best=is_best)
        self.finishing.start(pending.finish)
        if position is None and self.in_place_at_epoch_end:
            self.finishing.wait()

    def __enter__(self) -> CheckpointWriter:
        return self

    def __exit__(
        self, error_type: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        try:
            self.finishing.wait()
        except Exception as failure:
            if error is None or isinstance(error, Interrupted):  # an interruption promises latest.pt: it is not there
                raise
            warn(f"besides the error below, the last checkpoint could not be written: {failure}")  # not swallowed
