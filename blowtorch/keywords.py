"""A misspelled keyword argument names the keywords it was probably meant to be.

``run(model, loader, max_epoch=3)`` would otherwise end in Python's bare "unexpected keyword
argument" with the run's dozens of options left to look up; the error also says which ones are
closest, before anything is started or recorded.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from blowtorch.errors import UsageError

P = ParamSpec("P")
R = TypeVar("R")

_NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def checked_keywords(call_name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator: a keyword the function does not take raises :class:`UsageError` (a ``TypeError``)
    that names ``call_name`` (as the user writes the call) and the closest keywords it does take."""

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        accepted = [name for name, p in inspect.signature(function).parameters.items() if p.kind in _NAMED and name != "self"]
        known = frozenset(accepted)

        @functools.wraps(function)
        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            unknown = [name for name in kwargs if name not in known]
            if unknown:
                raise UsageError(_message(call_name, unknown, accepted))
            return function(*args, **kwargs)

        return call

    return decorate


def _message(call_name: str, unknown: list[str], accepted: list[str]) -> str:
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name, accepted, n=3, cutoff=0.6)
        hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
        parts.append(f"{name!r}{hint}")
    noun = "keyword arguments" if len(unknown) > 1 else "keyword argument"
    return f"{call_name} got an unexpected {noun} {', '.join(parts)}. It takes: {', '.join(accepted)}"
