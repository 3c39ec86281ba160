"""Ctrl-C and SIGTERM: finish the current step, checkpoint, stop cleanly; a second Ctrl-C aborts at once."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """Training stopped on a signal after writing ``latest.pt``; sacred records INTERRUPTED.

    A ``KeyboardInterrupt`` so that sacred (and anything else) treats it as an interruption.
    """

    def __init__(self, signal_number: int) -> None:
        super().__init__(signal.Signals(signal_number).name)
        self.signal_number = signal_number

    @property
    def exit_code(self) -> int:
        return 128 + self.signal_number  # 130 for SIGINT, 143 for SIGTERM, as shells report them


class StopRequest:
    """Turns SIGINT/SIGTERM into a flag the loop checks after every step, while installed.

    Handlers can only be installed from the main thread; elsewhere the signals keep their
    default behaviour. The previous handlers are restored on exit, except after a stop on SIGTERM:
    a launcher (torchrun, SLURM) may send it again while sacred records the run as INTERRUPTED, and
    the default action would kill the process before that record is written. SIGTERM stays
    ignored then, until the process exits (SIGKILL still ends it). A second SIGTERM during the
    graceful stop is ignored too; a second Ctrl-C aborts at once.
    """

    def __init__(self, ignore_sigterm_after_error: bool = False) -> None:
        self.signal_number: int | None = None
        self._previous: dict[int, Any] = {}
        # Under torchrun a failing rank makes the launcher SIGTERM the others at once: rank 0 must
        # still record the run as FAILED (the launcher sends SIGKILL 30 s later).
        self._ignore_sigterm_after_error = ignore_sigterm_after_error

    @property
    def requested(self) -> bool:
        return self.signal_number is not None

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for number in _SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        failed = kind is not None and self._ignore_sigterm_after_error
        for number, handler in self._previous.items():
            stopping_on_sigterm = number == signal.SIGTERM and (self.signal_number == signal.SIGTERM or failed)
            signal.signal(number, signal.SIG_IGN if stopping_on_sigterm else handler)
        self._previous.clear()

    def _handle(self, number: int, frame: FrameType | None) -> None:
        if self.signal_number is not None:
            if number == signal.SIGTERM:
                return  # a launcher repeating itself: the graceful stop is under way
            raise KeyboardInterrupt  # a second Ctrl-C: stop right now, without a checkpoint
        self.signal_number = number
