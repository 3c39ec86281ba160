#!/usr/bin/env python3
"""Start a SecantusDB (MongoDB-wire) server on 127.0.0.1 in the background; print its MongoDB URI.

python mongo/start_server.py                          # free port, in-memory data
python mongo/start_server.py --port 27017 --storage-path mongo/.run/data
python mongo/stop_server.py                           # stops it via the pid file
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from blowtorch_mongo.server import start_server  # noqa: E402

RUN_DIR = Path(__file__).resolve().parent / ".run"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=None, help="default: a free port")
    parser.add_argument("--storage-path", default=":memory:", help="data directory, or :memory: (default)")
    parser.add_argument("--pid-file", type=Path, default=RUN_DIR / "secantusd.pid")
    parser.add_argument("--log-file", type=Path, default=RUN_DIR / "secantusd.log")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for a ping")
    args = parser.parse_args()
    handle = start_server(
        args.port, args.storage_path, pid_file=args.pid_file, log_path=args.log_file, timeout=args.timeout
    )
    print(f"secantusd-py pid {handle.pid} on {handle.host}:{handle.port} (pid file {args.pid_file})", file=sys.stderr)
    print(f"sacred flag: -m {handle.sacred_m_arg('sacred')}", file=sys.stderr)
    print(handle.uri)  # the only stdout line, so URI=$(python mongo/start_server.py) works


if __name__ == "__main__":
    try:
        main()
    except (RuntimeError, OSError) as err:  # expected failures: a message, not a traceback
        sys.exit(f"{Path(__file__).name}: {err}")
