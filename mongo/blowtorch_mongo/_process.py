"""Process helpers shared by the SecantusDB, Omniboard and Chromium launchers.

Every process is started in its own session (``start_new_session=True``), so its pid is also its
process-group id: stopping "by pid" can then take any helper processes it spawned (Chromium's
renderers, for instance) with it, without ever matching processes by name.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

LOOPBACK = "127.0.0.1"
POLL_INTERVAL_S = 0.05  # between readiness probes; the probes themselves carry short timeouts


def free_port(host: str = LOOPBACK) -> int:
    """A port the kernel considers free right now (tiny race until the server binds it; fine here)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_accepts_connections(host: str, port: int) -> bool:
    """True if something already listens there. Checked before starting a server, because a readiness
    probe would otherwise happily succeed against whatever else owns the port."""
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def is_running(pid: int) -> bool:
    """Whether ``pid`` exists and has not exited. A zombie (exited, not yet reaped) counts as exited."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    stat = Path(f"/proc/{pid}/stat")
    try:
        state = stat.read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return not Path("/proc/self").exists()  # no procfs (not Linux): trust os.kill
    return state != "Z"


def cmdline(pid: int) -> str:
    """The command line of ``pid`` ('' if unknown); used to refuse killing a recycled pid."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _signal(pid: int, sig: int, group: bool) -> None:
    try:
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _wait_exit(pid: int, timeout: float, proc: subprocess.Popen[bytes] | None) -> bool:
    if proc is not None:  # our own child: wait() also reaps it
        try:
            proc.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            return False
    deadline = time.monotonic() + timeout
    while is_running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_INTERVAL_S)
    return True


def terminate(
    pid: int,
    timeout: float = 10.0,
    proc: subprocess.Popen[bytes] | None = None,
    group: bool | None = None,
) -> None:
    """SIGTERM ``pid``, wait up to ``timeout``, then SIGKILL. With ``group`` (default: if ``pid`` leads a
    process group) the signals go to the whole group, and the group is swept with SIGKILL at the end."""
    if group is None:
        try:
            group = os.getpgid(pid) == pid
        except ProcessLookupError:
            group = False
    if proc is None or proc.poll() is None:  # a reaped child is not signalled: its pid may be recycled
        _signal(pid, signal.SIGTERM, group)
        if not _wait_exit(pid, timeout, proc):
            _signal(pid, signal.SIGKILL, group)
            _wait_exit(pid, 5.0, proc)
    if group:
        # The leader is gone; kill helpers it may have left in its group (e.g. Chromium renderers).
        _signal(pid, signal.SIGKILL, True)


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def stop_pid_file(pid_file: Path, marker: str, timeout: float = 10.0) -> int | None:
    """Stop the process whose pid is in ``pid_file`` and remove the file. Returns that pid, or None if
    it was no longer running. Refuses to signal a pid whose command line lacks ``marker``: a stale pid
    file's pid may have been reused by an unrelated process."""
    pid = read_pid(pid_file)
    if pid is None:
        raise FileNotFoundError(f"no readable pid in {pid_file}")
    if not is_running(pid):
        pid_file.unlink(missing_ok=True)
        return None
    if marker not in cmdline(pid):
        raise RuntimeError(f"pid {pid} from {pid_file} is not {marker}: {cmdline(pid)!r}; not killing it")
    terminate(pid, timeout=timeout)
    pid_file.unlink(missing_ok=True)
    return pid


def claim_pid_file(pid_file: Path, marker: str) -> None:
    """Fail if ``pid_file`` names a live ``marker`` process; otherwise clear it for a new one."""
    old = read_pid(pid_file)
    if old is not None and is_running(old) and marker in cmdline(old):
        raise RuntimeError(f"{marker} already running with pid {old} (pid file {pid_file})")
    pid_file.unlink(missing_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_until_ready(
    probe: Callable[[], bool],
    *,
    proc: subprocess.Popen[bytes],
    what: str,
    timeout: float,
    log_path: Path,
) -> None:
    """Poll ``probe`` until it returns True. If the process dies or the deadline passes, stop the
    process and raise with the end of its log, so a failure explains itself."""
    deadline = time.monotonic() + timeout
    while True:
        code = proc.poll()
        if code is not None:
            raise RuntimeError(
                f"{what} exited with code {code} before it was ready. Log {log_path}:\n{log_tail(log_path)}"
            )
        if probe():
            return
        if time.monotonic() > deadline:
            terminate(proc.pid, proc=proc)
            raise TimeoutError(f"{what} was not ready after {timeout:.0f} s. Log {log_path}:\n{log_tail(log_path)}")
        time.sleep(POLL_INTERVAL_S)


@dataclass
class ProcessHandle:
    """A server process started on loopback; stop it by its pid with ``stop()`` or a ``with`` block."""

    host: str
    port: int
    pid: int
    log_path: Path
    pid_file: Path | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; removes the pid file if it is still ours."""
        terminate(self.pid, timeout=timeout, proc=self._proc)
        if self.pid_file is not None and read_pid(self.pid_file) == self.pid:
            self.pid_file.unlink(missing_ok=True)

    def __enter__(self):  # type: ignore[no-untyped-def]
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
