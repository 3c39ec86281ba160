"""One process at a time in a run directory.

Two processes training into one run directory (a resume started twice, or while the run still
trains) would overwrite each other's checkpoints and interleave ``log.txt``. Every run holds an
exclusive ``flock`` on its run directory itself while it trains: no lock file to clean up, and the
kernel releases the lock when the process ends, however it ends, so a crash or ``kill -9`` never
leaves a run directory locked.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

from blowtorch.errors import UsageError


def is_in_use(run_dir: Path) -> bool:
    """Whether a running process holds ``run_dir`` (trains in it) right now."""
    try:
        lock = RunDirectoryLock(run_dir)
        lock.acquire()
    except UsageError:
        return True
    lock.release()
    return False


class RunDirectoryLock:
    """``with RunDirectoryLock(path):`` holds the run directory; a second holder fails at once."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # Windows has no flock; run directories are not guarded there
            return
        fd = os.open(self.run_dir, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UsageError(
                f"{self.run_dir} is in use: another process is training in it right now. Wait for that run to end "
                f"(or stop it) before resuming it, or resume from a copy of the directory"
            ) from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the flock
            self._fd = None

    def __enter__(self) -> RunDirectoryLock:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.release()
