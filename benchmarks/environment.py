"""The environment of every measured process, and a description of the machine for the record."""

from __future__ import annotations

import compileall
import contextlib
import datetime as dt
import importlib.metadata
import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

# Measured in the results; only those installed are listed.
PACKAGES = ("torch", "sacred", "numpy", "lightning", "pytorch-ignite")


def child_environment(threads: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment, with this checkout first on the path (its ``blowtorch`` and
    ``benchmarks`` are the ones measured) and the thread count every contestant trains with."""
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), environment.get("PYTHONPATH")) if p)
    if threads > 0:
        environment["OMP_NUM_THREADS"] = str(threads)  # torch's intra-op threads
    environment.update(extra or {})
    return environment


def compile_checkout() -> None:
    """Byte-compile this checkout's ``blowtorch`` and ``benchmarks``, as installing a package does.

    Every other contestant's code comes from site-packages, compiled when pip installed it; an
    editable checkout has no ``.pyc`` files until Python writes them, and with
    ``PYTHONDONTWRITEBYTECODE`` set it never does: every measured process would compile blowtorch's
    sources again (about 60 ms), a cost no installed blowtorch has."""
    for package in ("blowtorch", "benchmarks"):
        compileall.compile_dir(REPO / package, quiet=1)


def describe_machine(scratch: Path) -> dict[str, Any]:
    return {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, "-m", "benchmarks", *sys.argv[1:]]),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "blowtorch": _blowtorch_version(),
        "commit": _git("rev-parse", "--short", "HEAD"),
        "uncommitted_changes": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "packages": _versions(),
        "scratch": str(scratch),
        "scratch_file_system": _file_system(scratch),
    }


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return match.group(1).strip() if match else "unknown"


def _memory_gib() -> float | None:
    try:
        match = re.search(r"^MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.MULTILINE)
    except OSError:
        return None
    return round(int(match.group(1)) / 2**20, 1) if match else None


def _blowtorch_version() -> str:
    """The checkout's version (not the installed package's, which may be another checkout)."""
    match = re.search(r'__version__\s*=\s*"([^"]+)"', (REPO / "blowtorch" / "_version.py").read_text())
    return match.group(1) if match else "unknown"


def _git(*arguments: str) -> str | None:
    try:
        result = subprocess.run(["git", *arguments], cwd=REPO, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def _versions() -> dict[str, str]:
    versions = {}
    for package in PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[package] = importlib.metadata.version(package)
    return versions


def _file_system(path: Path) -> str | None:
    """The type of the file system ``path`` is on (fsync costs nothing on tmpfs: say so)."""
    try:
        mounts = [line.split() for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return None
    resolved = str(path.resolve())
    best = max(
        (m for m in mounts if len(m) > 2 and (resolved == m[1] or resolved.startswith(m[1].rstrip("/") + "/"))),
        key=lambda m: len(m[1]),
        default=None,
    )
    return best[2] if best else None
