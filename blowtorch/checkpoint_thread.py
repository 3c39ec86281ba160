"""Finishing checkpoint writes in a background thread, one at a time.

The training thread serialises each checkpoint into a temp file: the part that reads the tensors
the next step changes (see :mod:`blowtorch.checkpoint_files`). The rest (checksum, fsync, manifest,
rename) touches no tensor and mostly waits for the disk, so a thread finishes it while training
goes on, with no copy of the state in memory. There is never more than one write in flight: the
next checkpoint and the end of the run wait for it, and an error it raised is raised there, in the
training thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class BackgroundFinish:
    """Runs one piece of work at a time in its own thread; :meth:`wait` joins it and raises its error."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self, work: Callable[[], None]) -> None:
        """Run ``work`` in a new thread, once the previous work has finished (raising its error, if any)."""
        self.wait()
        # Not a daemon: should the training thread end without waiting, Python still lets the write finish.
        self._thread = threading.Thread(target=self._run, args=(work,), name="blowtorch-checkpoint")
        self._thread.start()

    def wait(self) -> None:
        """Return when no work is in flight; raise the error of work that failed since the last call."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None  # only after the join: a Ctrl-C that interrupts it leaves the thread to wait for
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _run(self, work: Callable[[], None]) -> None:
        try:
            work()
        except BaseException as error:  # noqa: BLE001 - handed to the training thread by wait()
            self._error = error
