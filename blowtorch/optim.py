"""What ``configure_optimizers`` returns; backward and the optimizer step, in one place each.

Accepted return values::

    optimizer
    [opt_a, opt_b]            or  {"generator": opt_g, "critic": opt_c}
    optimizer, scheduler      (either side may also be a list or a dict)
    optimizer, {"scheduler": scheduler, "interval": "step", "monitor": "val.loss"}

Schedulers step once per optimizing epoch by default, after validation; ``interval="step"`` steps
them after every optimizer step. ``ReduceLROnPlateau`` steps with its ``monitor`` metric, by
default the checkpoint metric.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

from blowtorch.errors import UsageError
from blowtorch.update import UpdateRule, UpdateStatistics, clip_gradients

INTERVALS = ("epoch", "step")
_SPEC_KEYS = {"scheduler", "interval", "monitor"}


@dataclass
class Schedule:
    """A learning rate scheduler and when it steps."""

    scheduler: LRScheduler
    interval: str = "epoch"
    monitor: str | None = None  # metric for ReduceLROnPlateau; None means the checkpoint metric

    @property
    def needs_metric(self) -> bool:
        return isinstance(self.scheduler, ReduceLROnPlateau)


class OptimizerSet:
    """The optimizers and schedulers of a run, stepped together."""

    def __init__(self, optimizers: dict[str, Optimizer], schedules: dict[str, Schedule], rule: UpdateRule | None = None) -> None:
        self.optimizers = optimizers
        self.schedules = schedules
        self._step_schedules = [s for s in schedules.values() if s.interval == "step"]
        self._epoch_schedules = [s for s in schedules.values() if s.interval == "epoch"]
        self.rule = rule or UpdateRule()
        self.statistics = UpdateStatistics(list(optimizers))

    # The seam between the two halves of an update, as in Fabric and minGPT: precision (loss
    # scaling) and gradient accumulation go into backward, clipping and the scaler's step into step.

    def backward(self, loss: torch.Tensor) -> None:
        """Back-propagate ``loss`` once, into the gradients of every optimizer's parameters.

        With ``accumulate_grad_batches=k`` the loss is divided by k, so that k batches add up to
        the gradient of their mean; with float16 it is scaled first.
        """
        if self.rule.accumulate_grad_batches > 1:
            loss = loss / self.rule.accumulate_grad_batches
        (self.rule.scaler.scale(loss) if self.rule.scaler is not None else loss).backward()

    def step(self) -> None:
        """Step every optimizer with the gradients so far, clear them, then step per-step schedulers.

        With float16 the gradients are unscaled first (clipping sees their true values) and a step
        whose gradients overflowed is skipped by the scaler, as are the per-step schedulers then.
        """
        scaler, rule = self.rule.scaler, self.rule
        found_inf = []
        for name, optimizer in self.optimizers.items():
            if scaler is not None:
                scaler.unscale_(optimizer)
                found_inf += list(scaler._found_inf_per_device(optimizer).values())  # set by unscale_, on the device
            if rule.gradient_clip_val is not None:
                norm = clip_gradients([p for g in optimizer.param_groups for p in g["params"] if p.grad is not None], rule)
                if norm is not None:
                    self.statistics.add_norm(name, norm)
        skipped = None
        if scaler is not None:
            overflow = torch.stack([f.to(found_inf[0].device) for f in found_inf]).amax() if found_inf else torch.zeros(())
            self.statistics.add_skipped(overflow)
            if self._step_schedules:  # the one case that must know now (a sync): torch warns if they step anyway
                skipped = bool(overflow)
            for optimizer in self.optimizers.values():
                scaler.step(optimizer)
            scaler.update()
        else:
            for optimizer in self.optimizers.values():
                optimizer.step()
        self.statistics.steps += 1
        for optimizer in self.optimizers.values():  # after all steps: optimizers may share parameters
            optimizer.zero_grad(set_to_none=True)
        if not skipped:
            for schedule in self._step_schedules:
                schedule.scheduler.step()

    def zero_grad(self) -> None:
        for optimizer in self.optimizers.values():
            optimizer.zero_grad(set_to_none=True)

    def step_epoch_schedulers(
        self, metrics: Mapping[str, float], default_monitor: str, qualify: Callable[[str], str]
    ) -> None:
        """Step the per-epoch schedulers after an optimizing epoch.

        ``metrics`` holds the epoch's qualified metrics (``val.loss``); a ReduceLROnPlateau steps
        with its ``monitor`` (made qualified by ``qualify``), by default ``default_monitor``.
        """
        for schedule in self._epoch_schedules:
            scheduler = schedule.scheduler
            if isinstance(scheduler, ReduceLROnPlateau):
                scheduler.step(metrics[qualify(schedule.monitor) if schedule.monitor else default_monitor])
            else:
                scheduler.step()

    def monitors(self) -> list[str]:
        """The metric names that ReduceLROnPlateau schedulers were given as ``monitor``."""
        return [s.monitor for s in self._epoch_schedules if s.needs_metric and s.monitor is not None]

    def learning_rates(self) -> dict[str, float]:
        """The current learning rate of every parameter group: ``main``, or ``main/0``, ``main/1``, ..."""
        rates: dict[str, float] = {}
        for name, optimizer in self.optimizers.items():
            groups = optimizer.param_groups
            for index, group in enumerate(groups):
                rates[name if len(groups) == 1 else f"{name}/{index}"] = float(group["lr"])
        return rates

    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "schedulers": {name: s.scheduler.state_dict() for name, s in self.schedules.items()},
            "scaler": None if self.rule.scaler is None else self.rule.scaler.state_dict(),
        }


def parse_optimizers(returned: Any) -> OptimizerSet:
    """Turn ``configure_optimizers``' return value into an :class:`OptimizerSet`, or say what is wrong."""
    optimizers_part, schedulers_part = returned, None
    if isinstance(returned, tuple) and len(returned) == 2 and _looks_like_schedulers(returned[1]):
        optimizers_part, schedulers_part = returned
    optimizers = _named(optimizers_part, Optimizer, "optimizer")
    if not optimizers:
        raise UsageError(
            "configure_optimizers returned no optimizer; return one, e.g. "
            "'return torch.optim.Adam(model.parameters())'"
        )
    schedules = {name: _schedule(name, item) for name, item in _named_schedules(schedulers_part).items()}
    owned = {id(opt) for opt in optimizers.values()}
    for name, schedule in schedules.items():
        if id(schedule.scheduler.optimizer) not in owned:
            raise UsageError(
                f"scheduler '{name}' wraps an optimizer that configure_optimizers did not return; "
                f"return that optimizer too"
            )
    return OptimizerSet(optimizers, schedules)


def _looks_like_schedulers(candidate: Any) -> bool:
    if _is_schedule_item(candidate):
        return True
    if isinstance(candidate, Mapping):
        return bool(candidate) and all(_is_schedule_item(v) for v in candidate.values())
    if isinstance(candidate, Sequence) and not isinstance(candidate, str):
        return bool(candidate) and all(_is_schedule_item(v) for v in candidate)
    return False


def _is_schedule_item(candidate: Any) -> bool:
    return isinstance(candidate, LRScheduler) or _is_spec(candidate)


def _is_spec(candidate: Any) -> bool:
    return isinstance(candidate, Mapping) and "scheduler" in candidate and set(candidate) <= _SPEC_KEYS


def _named_schedules(part: Any) -> dict[str, Any]:
    if part is None:
        return {}
    if _is_schedule_item(part):
        return {"main": part}
    if isinstance(part, Mapping):
        return {str(name): item for name, item in part.items()}
    return {str(index): item for index, item in enumerate(part)}


def _named(part: Any, kind: type, label: str) -> dict[str, Any]:
    if isinstance(part, kind):
        return {"main": part}
    if isinstance(part, Mapping):
        items = [(str(name), value) for name, value in part.items()]
    elif isinstance(part, Sequence) and not isinstance(part, str):
        items = [(str(index), value) for index, value in enumerate(part)]
    else:
        raise UsageError(
            f"configure_optimizers returned {type(part).__name__} ({part!r:.80}); return an optimizer, a list "
            f"or dict of optimizers, or (optimizers, schedulers)"
        )
    for name, value in items:
        if not isinstance(value, kind):
            raise UsageError(
                f"configure_optimizers returned {type(value).__name__} as {label} '{name}'; "
                f"each {label} must be a torch.optim.Optimizer"
            )
    return dict(items)


def _schedule(name: str, item: Any) -> Schedule:
    if isinstance(item, LRScheduler):
        return Schedule(item)
    if not _is_spec(item):
        raise UsageError(
            f"configure_optimizers returned {type(item).__name__} as scheduler '{name}'; each scheduler must be "
            f"a torch.optim.lr_scheduler.LRScheduler or {{'scheduler': ..., 'interval': 'epoch'|'step', 'monitor': ...}}"
        )
    schedule = Schedule(item["scheduler"], item.get("interval", "epoch"), item.get("monitor"))
    if not isinstance(schedule.scheduler, LRScheduler):
        raise UsageError(f"scheduler '{name}': 'scheduler' must be an LRScheduler, got {type(schedule.scheduler).__name__}")
    if schedule.interval not in INTERVALS:
        raise UsageError(f"scheduler '{name}': interval must be one of {list(INTERVALS)}, got {schedule.interval!r}")
    if schedule.needs_metric and schedule.interval == "step":
        raise UsageError(
            f"scheduler '{name}' is a ReduceLROnPlateau, which steps on an epoch metric; use interval='epoch'"
        )
    if schedule.monitor is not None and not isinstance(schedule.monitor, str):
        raise UsageError(f"scheduler '{name}': monitor must be a metric name such as 'val.loss', got {schedule.monitor!r}")
    return schedule
