"""How an error that ends ``run(...)`` is shown: as sacred's command line shows it, blowtorch included.

sacred's ``Experiment.run_commandline`` prints a failure without sacred's frames and exits with 1,
unless ``-d`` asks for the exception itself; ``-D`` prints everything and opens pdb post mortem.
blowtorch starts the sacred run itself, so it does the same here, hiding blowtorch's frames too:
what is left is the user's own code and the message. Once the run has started, sacred has recorded
FAILED with the full traceback before any of this runs.
"""

from __future__ import annotations

import pdb
import sys
import traceback
from collections.abc import Sequence

from sacred.utils import SacredError, format_sacred_error

from blowtorch.errors import BlowtorchError
from blowtorch.user_warnings import is_internal_file

_HEADER = "Traceback (most recent call last):\n"
_FILTERED_HEADER = "Traceback (most recent call last; blowtorch's and sacred's frames hidden, -d shows them):\n"


def exit_on_failure(error: Exception, *, owns_process: bool, debug: bool, post_mortem: bool, short_usage: str) -> None:
    """End the process with exit code 1 after showing ``error``, or return for the caller to re-raise it.

    It returns with ``-d``, and when the command line is not the process's own (``Run(argv=...)``, a
    notebook): there ``run(...)`` is a library call, and the exception is what a caller, ``pytest.raises``
    or IPython's ``%debug`` needs.
    """
    if debug:
        return
    if post_mortem:
        traceback.print_exception(error, file=sys.stderr)
        pdb.post_mortem(error.__traceback__)
    if not owns_process:
        return
    if not post_mortem:
        if isinstance(error, SacredError):
            print(format_sacred_error(error, short_usage), file=sys.stderr)
        else:
            # The error's traceback starts where run(...) caught it; the script's frames that called run(...) come first.
            callers = [frame for frame in traceback.extract_stack() if not _is_internal(frame)]
            print(format_failure(error, callers), end="", file=sys.stderr)
    raise SystemExit(1)


def format_failure(error: BaseException, callers: Sequence[traceback.FrameSummary] = ()) -> str:
    """The traceback of ``error`` with only the frames outside blowtorch and sacred, and its message.

    ``callers`` go before the error's own frames. An error that is not a ``BlowtorchError`` but was
    raised inside blowtorch or sacred is a bug there: its whole traceback is the useful part, as in
    sacred's own 'default' filtering.
    """
    shown = traceback.TracebackException.from_exception(error)
    shown.stack = traceback.StackSummary.from_list([*callers, *shown.stack])
    if not isinstance(error, (BlowtorchError, SacredError)) and shown.stack and _is_internal(shown.stack[-1]):
        return "".join(shown.format())
    _hide_internal_frames(shown)
    return "".join(_FILTERED_HEADER if line == _HEADER else line for line in shown.format())


def _hide_internal_frames(shown: traceback.TracebackException) -> None:
    shown.stack = traceback.StackSummary.from_list([frame for frame in shown.stack if not _is_internal(frame)])
    for chained in (shown.__cause__, shown.__context__):  # e.g. a ConfigError raised `from` a yaml error
        if chained is not None:
            _hide_internal_frames(chained)


def _is_internal(frame: traceback.FrameSummary) -> bool:
    return is_internal_file(frame.filename)
