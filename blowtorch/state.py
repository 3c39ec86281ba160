"""The counters of a training run: everything the loop needs to know where it is."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass
class EpochPosition:
    """Where a run stands inside an epoch, for a checkpoint written before the epoch ended.

    ``partial`` holds the training step values so far (so the epoch's means come out the same);
    ``epoch_start_rng`` the random state from before the epoch's data iterator was created (so the
    data order can be replayed). Once the training pass is over, ``train_metrics`` holds its
    logged means instead and only validation is left.
    """

    batches_done: int
    epoch_start_rng: dict[str, Any] | None = None
    partial: dict[str, Any] | None = None
    train_metrics: dict[str, float] | None = None
    updates: dict[str, Any] | None = None  # the epoch's gradient-norm and skipped-step sums so far

    def as_dict(self) -> dict[str, Any]:
        return {
            "batches_done": self.batches_done,
            "epoch_start_rng": self.epoch_start_rng,
            "partial": self.partial,
            "train_metrics": self.train_metrics,
            "updates": self.updates,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EpochPosition:
        return cls(**data)


@dataclass
class TrainState:
    """Where a run is. Epochs and steps count from 0.

    ``epoch`` is the epoch being run (after the loop: the number of epochs done); ``global_step``
    the number of training batches processed so far in the whole run, baseline epoch included.
    """

    epoch: int = 0
    global_step: int = 0
    optimize_metric: str | None = None  # name in the training results, resolved at the first step
    checkpoint_metric: str | None = None  # qualified name ("val.loss"), resolved after the first epoch
    best_value: float | None = None
    best_epoch: int | None = None
    last_metrics: dict[str, float] = field(default_factory=dict)  # qualified names -> last epoch's values

    def is_improvement(self, value: float, smaller_is_better: bool) -> bool:
        """Whether ``value`` of the checkpoint metric beats the best so far (NaN never does)."""
        if math.isnan(value):
            return False
        if self.best_value is None:
            return True
        return value < self.best_value if smaller_is_better else value > self.best_value

    def as_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "global_step": self.global_step,
            "optimize_metric": self.optimize_metric,
            "checkpoint_metric": self.checkpoint_metric,
            "best_value": self.best_value,
            "best_epoch": self.best_epoch,
            "last_metrics": dict(self.last_metrics),
        }

    @classmethod
    def resumed_from(cls, checkpoint: dict[str, Any]) -> TrainState:
        """The state to continue with: the next epoch, or the checkpoint's own epoch if it stopped inside it."""
        state = cls(**checkpoint["state"])
        if checkpoint.get("position") is None:
            state.epoch += 1
        return state
