"""Resuming with changed optimizer or scheduler settings: the new settings win, at the checkpoint's position.

A checkpoint holds two kinds of optimizer and scheduler state: *progress* (momentum buffers, step
counts, the scheduler's epoch, a plateau scheduler's best value) and *hyperparameters* (weight
decay, betas, ``T_max``, ``gamma``, the base learning rate). When a resumed run's
``configure_optimizers`` builds them with the same hyperparameters, the checkpoint is loaded as it
is and the run continues bit-exactly. When a hyperparameter differs (``T_max`` follows a larger
``max_epochs``, a new weight decay), the new value wins: the progress is kept, and every
scheduler continues at the checkpoint's position on the *new* schedule, with the learning rate
that schedule gives there, as if the run had used the new settings from its start. A
``ReduceLROnPlateau`` keeps its learning rate, which depends on the metric's history.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

from blowtorch.optim import OptimizerSet

# Scheduler entries that are not its settings: how far the schedule has gone, and the optimizer's
# initial learning rates (``base_lrs``, compared with the optimizer's settings).
_NOT_SCHEDULER_SETTINGS = {
    "last_epoch",
    "_step_count",
    "_last_lr",
    "_get_lr_called_within_step",
    "_is_initial",
    "_initial_step",
    "verbose",
    "best",
    "num_bad_epochs",
    "cooldown_counter",
    "base_lrs",
}
# Parameter-group entries that are not settings: the parameters, and the learning rate a scheduler moves.
_NOT_GROUP_SETTINGS = {"params", "initial_lr", "lr"}


def load_optimizers(optimizers: OptimizerSet, saved_optimizers: Mapping[str, Any], saved_schedulers: Mapping[str, Any]) -> list[str]:
    """Load a checkpoint's optimizer and scheduler states; return how their settings changed (empty: none).

    An optimizer whose settings, or whose schedulers' settings, changed keeps its progress from the
    checkpoint and takes the new settings; its schedulers continue on the new schedule.
    """
    changes: dict[str, list[str]] = {}
    for name, optimizer in optimizers.optimizers.items():
        schedules = {n: s.scheduler for n, s in optimizers.schedules.items() if s.scheduler.optimizer is optimizer}
        changes[name] = _optimizer_changes(name, saved_optimizers[name], optimizer, scheduled=bool(schedules))
        changes[name] += [line for n, scheduler in schedules.items() for line in _scheduler_changes(n, saved_schedulers[n], scheduler)]
        if not changes[name]:
            optimizer.load_state_dict(saved_optimizers[name])
            for n, scheduler in schedules.items():
                scheduler.load_state_dict(saved_schedulers[n])
            continue
        _load_with_new_settings(optimizer, saved_optimizers[name])
        for n, scheduler in schedules.items():
            _continue_schedule(scheduler, saved_schedulers[n])
    return [line for lines in changes.values() for line in lines]


def _optimizer_changes(name: str, saved: Mapping[str, Any], current: Optimizer, scheduled: bool) -> list[str]:
    """``scheduled``: a scheduler moves the learning rate, so only the one it started from is a setting."""
    changes = []
    groups = current.state_dict()["param_groups"]
    for index, (old, new) in enumerate(zip(saved["param_groups"], groups, strict=False)):
        where = f"optimizer '{name}'" + (f" group {index}" if len(groups) > 1 else "")
        settings = {}
        if not scheduled:
            settings["lr"] = (old.get("lr"), new.get("lr"))
        elif "initial_lr" in old and "initial_lr" in new:  # ReduceLROnPlateau records no initial lr
            settings["lr"] = (old["initial_lr"], new["initial_lr"])
        settings.update({key: (old.get(key), new.get(key)) for key in sorted((set(old) | set(new)) - _NOT_GROUP_SETTINGS)})
        changes += [f"{where} {key}: {a!r} -> {b!r}" for key, (a, b) in settings.items() if not _same(a, b)]
    return changes


def _scheduler_changes(name: str, saved: Mapping[str, Any], current: LRScheduler) -> list[str]:
    old, new = _settings(saved), _settings(current.state_dict())
    return [
        f"scheduler '{name}' ({type(current).__name__}) {key}: {old.get(key)!r} -> {new.get(key)!r}"
        for key in sorted(set(old) | set(new))
        if not _same(old.get(key), new.get(key))
    ]


def _load_with_new_settings(optimizer: Optimizer, saved: Mapping[str, Any]) -> None:
    """The checkpoint's progress (momentum, step counts) with the current settings, learning rate included."""
    settings = [{key: value for key, value in group.items() if key != "params"} for group in optimizer.param_groups]
    optimizer.load_state_dict(dict(saved))
    for group, setting in zip(optimizer.param_groups, settings, strict=True):
        group.update(setting)


def _continue_schedule(scheduler: LRScheduler, saved: Mapping[str, Any]) -> None:
    """Move a freshly built scheduler to the checkpoint's position on its own (new) schedule.

    Stepping it there gives the learning rate of any scheduler, chainable or not. The optimizer
    is not stepped meanwhile, so torch's warning about that order is expected, and muted.
    """
    if isinstance(scheduler, ReduceLROnPlateau):  # its lr follows the metric's history: keep it
        scheduler.load_state_dict({**saved, **_settings(scheduler.state_dict())})
        for group, lr in zip(scheduler.optimizer.param_groups, saved.get("_last_lr", ()), strict=False):
            group["lr"] = lr
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()` before"))
        while scheduler.last_epoch < saved["last_epoch"]:
            scheduler.step()


def _settings(state: Any) -> Any:
    """A scheduler's state without its progress, also inside chained schedulers (SequentialLR)."""
    if isinstance(state, Mapping):
        return {key: _settings(value) for key, value in state.items() if key not in _NOT_SCHEDULER_SETTINGS}
    if isinstance(state, (list, tuple)):
        return [_settings(item) for item in state]
    return state


def _same(a: Any, b: Any) -> bool:
    """Equal as settings: a tuple loaded back from a checkpoint may be a list."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return set(a) == set(b) and all(_same(a[k], b[k]) for k in a)
    try:
        return bool(a == b)
    except (RuntimeError, ValueError):  # tensors with more than one element
        return False
