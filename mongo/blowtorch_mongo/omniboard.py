"""Install Omniboard (the sacred dashboard, npm ``omniboard``) into a cache directory and run it on
loopback against a MongoDB database, for development and tests."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._process import (
    LOOPBACK,
    ProcessHandle,
    claim_pid_file,
    free_port,
    port_accepts_connections,
    stop_pid_file,
    wait_until_ready,
)

OMNIBOARD_VERSION = "2.16.1"
# mongo/.omniboard/ (gitignored by mongo/.gitignore): ~800 npm packages, installed once.
DEFAULT_CACHE_DIR = Path(__file__).resolve().parent.parent / ".omniboard"
LOOPBACK_JS = Path(__file__).resolve().with_name("omniboard_loopback.js")
MOUNT = "/sacred"  # Omniboard serves the database given by -m/--mu under this path


def _package_json(cache_dir: Path) -> Path:
    return cache_dir / "node_modules" / "omniboard" / "package.json"


def _installed_version(cache_dir: Path) -> str | None:
    try:
        return str(json.loads(_package_json(cache_dir).read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


def install_omniboard(cache_dir: Path = DEFAULT_CACHE_DIR, version: str = OMNIBOARD_VERSION) -> Path:
    """``npm install omniboard@version`` into ``cache_dir`` unless already there; returns the path of
    Omniboard's server entry point (``dist/start.js``)."""
    entry = cache_dir / "node_modules" / "omniboard" / "dist" / "start.js"
    if _installed_version(cache_dir) == version:
        return entry
    npm = shutil.which("npm")
    if npm is None:
        raise FileNotFoundError("npm not found; install Node.js and npm (Debian: apt-get install -y nodejs npm)")
    cache_dir.mkdir(parents=True, exist_ok=True)
    # A lock, so parallel test workers do not run two npm installs into the same directory.
    with (cache_dir / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed_version(cache_dir) == version:
            return entry
        manifest = cache_dir / "package.json"
        if not manifest.exists():  # keeps npm from looking for a project in parent directories
            manifest.write_text('{"private": true, "description": "Omniboard cache for blowtorch dev/tests"}\n')
        result = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", f"omniboard@{version}"],
            cwd=cache_dir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=900,
        )
        if result.returncode != 0 or _installed_version(cache_dir) != version:
            raise RuntimeError(f"npm install omniboard@{version} failed in {cache_dir}:\n{result.stderr[-3000:]}")
    return entry


def run_page_url(omniboard_url: str, run_id: int, status: str = "COMPLETED") -> str:
    """URL of Omniboard's detail modal for one run; it opens on the "Metrics Plot" tab, all metrics shown.

    Omniboard is a single-page app without per-run routes, but its runs table reads these query
    parameters on load (``RunsTable._parseQueryString`` in 2.16.1). ``runIdStatus`` is only the status
    the modal assumes (RUNNING makes it poll for live output). ``omniboard_url`` may be the server root
    (``http://127.0.0.1:9000``) or the mount (``.../sacred``).
    """
    base = omniboard_url.rstrip("/")
    if not base.endswith(MOUNT):
        base += MOUNT
    query = urllib.parse.urlencode({"showDrillDownRunModal": "true", "runIdToExpand": run_id, "runIdStatus": status})
    return f"{base}?{query}"


@dataclass
class OmniboardHandle(ProcessHandle):
    """A running Omniboard. ``url`` is the web UI (the sacred mount); stop it with ``stop()``."""

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{MOUNT}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/v1"

    def run_url(self, run_id: int, status: str = "COMPLETED") -> str:
        """The page showing one run's detail with its metrics plot; see ``run_page_url``."""
        return run_page_url(self.url, run_id, status)

    def get_json(self, path: str, **params: Any) -> Any:
        """GET ``api_url + path`` (e.g. ``"/Runs"``, ``"/Metrics", query='{"run_id": 1}'``) as JSON."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.api_url}{path}{query}", timeout=10) as response:
            return json.load(response)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False  # refused while starting; HTTP 500 until its Mongo connection is open


def start_omniboard(
    mongo_host: str = LOOPBACK,
    mongo_port: int = 27017,
    db_name: str = "sacred",
    port: int | None = None,
    *,
    mongo_uri: str | None = None,
    host: str = LOOPBACK,
    cache_dir: Path = DEFAULT_CACHE_DIR,
    log_path: Path | None = None,
    pid_file: Path | None = None,
    timeout: float = 60.0,
) -> OmniboardHandle:
    """Start Omniboard on ``host:port`` (a free port by default) against ``mongo_host:mongo_port/db_name``,
    or against ``mongo_uri`` (which must name the database, e.g. ``mongodb://h:p/db?retryWrites=false``),
    and return once its REST API answers from the database (``/sacred/api/v1/Runs/count``)."""
    entry = install_omniboard(cache_dir)
    node = shutil.which("node")
    if node is None:
        raise FileNotFoundError("node not found; install Node.js (Debian: apt-get install -y nodejs)")
    port = port or free_port(host)
    if port_accepts_connections(host, port):
        raise RuntimeError(f"{host}:{port} is already in use")
    if pid_file is not None:
        claim_pid_file(pid_file, "omniboard")
    log_path = log_path or Path(tempfile.gettempdir()) / f"omniboard-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)

    # -m accepts exactly host:port:db (Omniboard splits on ':'); anything richer goes through --mu.
    mongo_args = ["--mu", mongo_uri] if mongo_uri else ["-m", f"{mongo_host}:{mongo_port}:{db_name}"]
    env = {k: v for k, v in os.environ.items() if k not in ("OMNIBOARD_CONFIG", "MONGO_URI")}  # both override -m
    env.update(
        PORT=str(port),
        OMNIBOARD_LISTEN_HOST=host,
        NODE_OPTIONS=f'{env.get("NODE_OPTIONS", "")} --require "{LOOPBACK_JS}"'.strip(),
    )
    with log_path.open("wb") as log:
        # `node dist/start.js` rather than `npx omniboard`: npx would be a wrapper process, and the
        # pid we stop must be the server itself.
        proc = subprocess.Popen(
            [node, str(entry), *mongo_args],
            cwd=cache_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    handle = OmniboardHandle(host, port, proc.pid, log_path, pid_file, proc)
    if pid_file is not None:
        pid_file.write_text(f"{proc.pid}\n")
    try:
        wait_until_ready(
            lambda: _answers(f"{handle.api_url}/Runs/count"),
            proc=proc,
            what="omniboard",
            timeout=timeout,
            log_path=log_path,
        )
    except BaseException:
        handle.stop()
        raise
    return handle


def stop_omniboard(pid_file: Path, timeout: float = 10.0) -> int | None:
    """Stop the Omniboard whose pid is in ``pid_file``; returns that pid, or None if it was not running."""
    return stop_pid_file(pid_file, "omniboard", timeout)
