"""The registry of user functions (``@run.train_step`` and friends).

A function receives its arguments by parameter name. Which names a hook may ask for is fixed per
hook, and the signature is checked when the function is registered, so a typo fails on the line
of the decorator instead of in the middle of a training run.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from blowtorch.errors import UsageError
from blowtorch.metrics import check_metric_name

F = TypeVar("F", bound=Callable[..., Any])

STEP_PARAMS = ("batch", "model", "epoch", "step", "batch_index", "device", "is_validate")
PASS_END_PARAMS = ("metrics", "model", "epoch", "step", "device", "is_validate")
EPOCH_PARAMS = ("model", "epoch", "step", "device")

#: For each hook: the parameter names it may declare, and what each one receives (for docs/errors).
HOOK_PARAMS: dict[str, tuple[str, ...]] = {
    "train_step": STEP_PARAMS,
    "validate_step": STEP_PARAMS,
    "configure_optimizers": ("model", "device"),
    "after_train": PASS_END_PARAMS,
    "after_validate": PASS_END_PARAMS,
    "before_epoch": EPOCH_PARAMS,
    "after_epoch": EPOCH_PARAMS,
}


@dataclass(frozen=True)
class Hook:
    """A registered user function and the argument names it asked for."""

    kind: str
    function: Callable[..., Any]
    wanted: tuple[str, ...]

    def __call__(self, available: Mapping[str, Any]) -> Any:
        # zip/map rather than a comprehension: no extra Python frame (this runs once per step)
        return self.function(**dict(zip(self.wanted, map(available.__getitem__, self.wanted), strict=True)))


class HookRegistry:
    """Holds at most one function per hook kind."""

    def __init__(self) -> None:
        self._hooks: dict[str, Hook] = {}

    def register(self, kind: str, function: F) -> F:
        """Check ``function``'s signature for ``kind`` and store it; returns it unchanged."""
        allowed = HOOK_PARAMS[kind]
        if not callable(function):
            raise UsageError(
                f"@run.{kind} decorates a function, but received {function!r}; "
                f"write it directly above a 'def'"
            )
        if kind in self._hooks:
            previous = self._hooks[kind].function
            raise UsageError(
                f"@run.{kind} is already registered for {_describe(previous)}; "
                f"a run has one {kind}, so remove one of the two decorators"
            )
        self._hooks[kind] = Hook(kind, function, _wanted_names(kind, function, allowed))
        return function

    def get(self, kind: str) -> Hook | None:
        return self._hooks.get(kind)

    def __contains__(self, kind: str) -> bool:
        return kind in self._hooks

    def derived_metrics(self, kind: str, means: Mapping[str, float], arguments: Mapping[str, Any]) -> dict[str, float]:
        """The epoch's ``means`` of a phase plus what an ``after_train`` / ``after_validate`` hook adds."""
        hook = self._hooks.get(kind)
        if hook is None:
            return dict(means)
        metrics = dict(means)
        extra = hook({**arguments, "metrics": metrics})
        if isinstance(extra, Mapping):
            for name in extra:
                check_metric_name(name, kind)
            metrics.update(extra)
        elif extra is not None:
            raise UsageError(f"{kind} returned {type(extra).__name__}; return None or a dict of extra metrics")
        return {name: _as_float(value, name, kind) for name, value in metrics.items()}

    def functions(self) -> list[Callable[..., Any]]:
        """Every registered function once, in registration order (one may serve two hooks)."""
        unique: dict[int, Callable[..., Any]] = {}
        for hook in self._hooks.values():
            unique.setdefault(id(hook.function), hook.function)
        return list(unique.values())


def _wanted_names(kind: str, function: Callable[..., Any], allowed: tuple[str, ...]) -> tuple[str, ...]:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError) as error:
        raise UsageError(f"@run.{kind}: cannot read the signature of {function!r} ({error})") from error
    wanted: list[str] = []
    for parameter in parameters:
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            return allowed  # **kwargs: the function receives everything this hook offers
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.POSITIONAL_ONLY):
            raise UsageError(
                f"@run.{kind} {_describe(function)}: parameter '{parameter.name}' cannot be passed "
                f"by name; blowtorch passes arguments by name, so use plain parameters from {list(allowed)}"
            )
        if parameter.name not in allowed:
            raise UsageError(
                f"@run.{kind} {_describe(function)}: unknown parameter '{parameter.name}'; "
                f"the parameters a {kind} function may take are {list(allowed)}"
            )
        wanted.append(parameter.name)
    return tuple(wanted)


def _as_float(value: Any, name: str, kind: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError):
        raise UsageError(f"{kind} set metric '{name}' to {value!r:.60}; metrics must be numbers") from None


def _describe(function: Callable[..., Any]) -> str:
    name = getattr(function, "__qualname__", repr(function))
    code = getattr(function, "__code__", None)
    where = f" ({code.co_filename}:{code.co_firstlineno})" if code is not None else ""
    return f"'{name}'{where}"
