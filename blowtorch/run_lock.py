"""One process at a time in a run directory.

Two processes training into one run directory (a resume started twice, or while the run still
trains) would overwrite each other's checkpoints and interleave ``log.txt``. Every run holds an
exclusive ``flock`` on ``<run dir>/.lock`` while it trains. The kernel releases it when the process
ends, however it ends, so a crash or ``kill -9`` never leaves a run directory locked. The file
holds the owner's pid and host for the error message; its existence alone means nothing.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from types import TracebackType
from typing import IO

from blowtorch.errors import UsageError

LOCK_FILE = ".lock"


class RunDirectoryLock:
    """``with RunDirectoryLock(path):`` holds the run directory; a second holder fails at once."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK_FILE
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # Windows: no flock; the run directory is not guarded there
            return
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held open for the whole run
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise UsageError(
                f"{self.path.parent} is in use by {owner}, which is training in it right now; wait for that run to "
                f"end (or stop it) before resuming it, or resume from a copy of the directory"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing releases the flock
            self._handle = None

    def __enter__(self) -> RunDirectoryLock:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.release()
