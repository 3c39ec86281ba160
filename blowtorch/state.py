"""The counters of a training run: everything the loop needs to know where it is."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


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

    def as_dict(self) -> dict[str, object]:
        return {
            "epoch": self.epoch,
            "global_step": self.global_step,
            "optimize_metric": self.optimize_metric,
            "checkpoint_metric": self.checkpoint_metric,
            "best_value": self.best_value,
            "best_epoch": self.best_epoch,
        }
