"""Screenshot a web page with headless Chromium (Debian package ``chromium``), e.g. an Omniboard run."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from ._process import log_tail, terminate

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_HINT = "install it with: apt-get install -y chromium"

# Quiet, self-contained headless Chromium: no sandbox (tests run as root), no GPU, no calls home,
# no first-run UI, nothing that fetches updates or syncs.
BASE_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--hide-scrollbars",
)


def find_chromium() -> str:
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    raise FileNotFoundError(f"Chromium not found ({', '.join(CANDIDATES)}); {INSTALL_HINT}")


def screenshot(
    url: str,
    out_path: Path,
    *,
    width: int = 1600,
    height: int = 1000,
    virtual_time_budget_ms: int = 15000,
    timeout: float = 90.0,
    chromium: str | None = None,
) -> Path:
    """Load ``url`` and write a PNG of the viewport to ``out_path``.

    ``--virtual-time-budget`` lets the page's timers and network requests run (in virtual time) before
    the capture, so a React app such as Omniboard has fetched its data and drawn its plots. Chromium is
    killed by pid (with its process group) if it is still running after ``timeout`` seconds.
    """
    out_path = Path(out_path).resolve()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.unlink(missing_ok=True)  # so a stale file never passes for a fresh screenshot
    browser = chromium or find_chromium()
    with tempfile.TemporaryDirectory(prefix="bt-chromium-") as tmp:
        log_path = Path(tmp) / "chromium.log"
        args = [
            browser,
            *BASE_FLAGS,
            f"--user-data-dir={Path(tmp) / 'profile'}",  # fresh profile: no cached state, no lock clashes
            f"--window-size={width},{height}",
            f"--virtual-time-budget={virtual_time_budget_ms}",
            f"--screenshot={out_path}",
            url,
        ]
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            terminate(proc.pid, timeout=5.0, proc=proc, group=True)
            raise TimeoutError(f"Chromium did not finish within {timeout:.0f} s:\n{log_tail(log_path)}") from None
        finally:
            terminate(proc.pid, timeout=5.0, proc=proc, group=True)  # sweeps helpers left in its group
        if not out_path.is_file() or out_path.stat().st_size == 0:
            raise RuntimeError(f"Chromium (exit {proc.returncode}) wrote no screenshot:\n{log_tail(log_path)}")
    return out_path
