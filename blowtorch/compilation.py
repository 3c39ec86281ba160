"""``torch.compile``: checking the option, compiling the model, and naming the option when it fails.

The model is compiled once, after it is on its device. Compiling wraps it: the user's steps get
the compiled module, while checkpoints, summaries and ``load_state_dict`` use the user's own
module, so a checkpoint's keys never carry ``_orig_mod.`` and runs with and without
compile resume from each other's checkpoints.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch

from blowtorch.errors import OptionError, TrainingError

_COMPILE_ARGUMENTS = [name for name in inspect.signature(torch.compile).parameters if name != "model"]


def compile_arguments(value: Any) -> dict[str, Any] | None:
    """The keyword arguments for ``torch.compile`` (None: do not compile), or an error naming the option."""
    if value is False:
        return None
    if value is True:
        return {}
    if isinstance(value, Mapping):
        unknown = [key for key in value if key not in _COMPILE_ARGUMENTS]
        if unknown:
            raise OptionError(
                f"compile={dict(value)!r}: {unknown} {'is' if len(unknown) == 1 else 'are'} not torch.compile arguments; "
                f"it takes {_COMPILE_ARGUMENTS}"
            )
        return dict(value)
    raise OptionError(f"compile must be True, False or a dict of torch.compile arguments (e.g. {{'mode': 'max-autotune'}}), got {value!r}")


def compile_model(model: torch.nn.Module, arguments: dict[str, Any] | None) -> torch.nn.Module:
    """The module the steps call: ``model`` compiled, or ``model`` itself."""
    if arguments is None:
        return model
    try:
        return torch.compile(model, **arguments)  # type: ignore[return-value]
    except Exception as error:
        raise compile_failure(error) from error


def compile_failure(error: Exception) -> TrainingError:
    """The error that says torch.compile failed, and how to train without it."""
    return TrainingError(f"torch.compile failed: {type(error).__name__}: {error}. Pass compile=False to train without it")


def is_compile_failure(error: BaseException) -> bool:
    """An error raised by torch.compile's machinery (it compiles lazily, at the first call of the model)."""
    return type(error).__module__.startswith(("torch._dynamo", "torch._inductor"))
