"""Start and stop a SecantusDB server (a MongoDB-wire server from PyPI) for development and tests.

SecantusDB stands in for ``mongod``, which has no Debian/PyPI package. It runs as a separate process
(it is GPL-2.0-only: a dev/test dependency we call, never vendor). Users run a real MongoDB instead;
see ``mongo/docker-compose.yml``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from ._process import (
    LOOPBACK,
    ProcessHandle,
    claim_pid_file,
    free_port,
    port_accepts_connections,
    stop_pid_file,
    wait_until_ready,
)

SECANTUS_PIN = "SecantusDB==0.7.0b3"
EXECUTABLE = "secantusd-py"
INSTALL_HINT = f"install it with: pip install '{SECANTUS_PIN}'  (see mongo/requirements-dev.txt)"


def find_secantusd() -> str:
    """Path of ``secantusd-py``: next to the running interpreter first (a venv that is used but not
    activated has no bin/ on PATH), then on PATH."""
    beside = Path(sys.executable).parent / EXECUTABLE
    if beside.is_file():
        return str(beside)
    found = shutil.which(EXECUTABLE)
    if found is None:
        raise FileNotFoundError(f"{EXECUTABLE} not found; {INSTALL_HINT}")
    return found


def mongo_uri(host: str, port: int) -> str:
    # retryWrites=false: SecantusDB 0.7.0b3 slows every write down once it has seen about 10,000
    # retryable writes in 30 minutes (its retryable-write table is sorted on each write); sacred
    # never needs retryable writes.
    return f"mongodb://{host}:{port}/?retryWrites=false"


def _ping(uri: str) -> bool:
    client: MongoClient[dict[str, object]] = MongoClient(
        uri, serverSelectionTimeoutMS=250, connectTimeoutMS=250, socketTimeoutMS=1000
    )
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()


@dataclass
class ServerHandle(ProcessHandle):
    """A running SecantusDB. Stop it with ``stop()`` or use it as a context manager."""

    storage_path: str = ":memory:"

    @property
    def uri(self) -> str:
        return mongo_uri(self.host, self.port)

    def sacred_m_arg(self, db_name: str) -> str:
        """The value for sacred's ``-m`` flag (``host:port:db``). Note: ``-m`` cannot carry
        ``retryWrites=false``; fine for a per-session server (see mongo/README.md)."""
        return f"{self.host}:{self.port}:{db_name}"

    def client(self, **kwargs: object) -> MongoClient[dict[str, object]]:
        """A pymongo client for this server (caller closes it)."""
        kwargs.setdefault("serverSelectionTimeoutMS", 5000)
        return MongoClient(self.uri, **kwargs)  # type: ignore[arg-type]


def start_server(
    port: int | None = None,
    storage_path: str | Path = ":memory:",
    *,
    host: str = LOOPBACK,
    cache_size: str = "256M",
    log_level: str = "WARNING",
    pid_file: Path | None = None,
    log_path: Path | None = None,
    timeout: float = 30.0,
) -> ServerHandle:
    """Start ``secantusd-py`` and return once it answers a real ``ping``.

    ``storage_path=":memory:"`` is a throwaway temp dir that SecantusDB removes on a clean (SIGTERM)
    shutdown; a directory keeps the data across restarts. ``cache_size`` 256M keeps the server at
    ~100-200 MB (the 1G default grew to ~620 MB).
    """
    executable = find_secantusd()
    port = port or free_port(host)
    if port_accepts_connections(host, port):
        raise RuntimeError(f"{host}:{port} is already in use")
    if str(storage_path) != ":memory:":
        storage_path = Path(storage_path).resolve()
        storage_path.mkdir(parents=True, exist_ok=True)
    if pid_file is not None:
        claim_pid_file(pid_file, EXECUTABLE)
    log_path = log_path or Path(tempfile.gettempdir()) / f"secantusd-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)

    args = [
        executable,
        "--host", host,
        "--port", str(port),
        "--storage-path", str(storage_path),
        "--cache-size", cache_size,
        "--log-level", log_level,
    ]  # fmt: skip
    with log_path.open("wb") as log:
        # Own session: Ctrl-C in the caller's terminal does not kill it mid-write; we stop it by pid.
        proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    handle = ServerHandle(host, port, proc.pid, log_path, pid_file, proc, storage_path=str(storage_path))
    if pid_file is not None:
        pid_file.write_text(f"{proc.pid}\n")
    try:
        wait_until_ready(lambda: _ping(handle.uri), proc=proc, what=EXECUTABLE, timeout=timeout, log_path=log_path)
    except BaseException:
        handle.stop()
        raise
    return handle



def stop_server(pid_file: Path, timeout: float = 10.0) -> int | None:
    """Stop the server whose pid is in ``pid_file`` (written by ``start_server(pid_file=...)``);
    returns that pid, or None if it was not running any more."""
    return stop_pid_file(pid_file, EXECUTABLE, timeout)
