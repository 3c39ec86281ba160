#!/usr/bin/env python3
"""Stop the SecantusDB server started by start_server.py (SIGTERM via its pid file, SIGKILL after a timeout)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from blowtorch_mongo.server import stop_server  # noqa: E402

RUN_DIR = Path(__file__).resolve().parent / ".run"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pid-file", type=Path, default=RUN_DIR / "secantusd.pid")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds between SIGTERM and SIGKILL")
    args = parser.parse_args()
    if not args.pid_file.exists():
        sys.exit(f"no pid file at {args.pid_file}: nothing to stop")
    pid = stop_server(args.pid_file, timeout=args.timeout)
    print(f"stopped secantusd-py pid {pid}" if pid else "secantusd-py was not running; removed the stale pid file")


if __name__ == "__main__":
    try:
        main()
    except (RuntimeError, OSError) as err:  # expected failures: a message, not a traceback
        sys.exit(f"{Path(__file__).name}: {err}")
