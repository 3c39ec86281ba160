"""Warnings that point at the user's code, not at blowtorch's.

A warning is shown with the file and line it is attributed to. blowtorch warns from deep inside
``run(...)`` (under sacred's run, the job and the loop), where a fixed ``stacklevel`` would show a
line of blowtorch or sacred. :func:`warn` attributes the warning to the first frame outside
blowtorch and the libraries it calls through: the user's ``run(...)`` or ``Run(...)`` line.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import warnings


def _package_directory(name: str) -> str:
    """Where a package lives, found without importing it (importing sacred is slow; see blowtorch.run)."""
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.submodule_search_locations, f"{name} is a dependency of blowtorch"
    return os.path.realpath(next(iter(spec.submodule_search_locations))) + os.sep


_INTERNAL_PREFIXES = (
    os.path.dirname(os.path.realpath(__file__)) + os.sep,  # blowtorch itself
    _package_directory("sacred"),  # sacred runs the job as its main function
)
_INTERNAL_FILES = {os.path.realpath(contextlib.__file__)}


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn(message, category)``, shown at the user's line that led here."""
    frame = sys._getframe(1)
    level = 2  # 1 would be the warnings.warn line below, 2 the caller of this function
    while frame.f_back is not None and is_internal_file(frame.f_code.co_filename):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)


def is_internal_file(filename: str) -> bool:
    """Code the user did not write and need not see: blowtorch, sacred and the machinery between them."""
    if filename.startswith("<frozen") or f"{os.sep}wrapt{os.sep}" in filename:
        return True  # import machinery; sacred's captured functions are wrapt wrappers
    path = os.path.realpath(filename)
    return path.startswith(_INTERNAL_PREFIXES) or path in _INTERNAL_FILES
