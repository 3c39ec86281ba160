#!/usr/bin/env python3
"""Run Omniboard (sacred's web dashboard) on 127.0.0.1 without Docker.

    python mongo/omniboard.py install                         # npm install omniboard into mongo/.omniboard/
    python mongo/omniboard.py start -m 127.0.0.1:27017:sacred --port 9000
    python mongo/omniboard.py start --mu 'mongodb://127.0.0.1:27017/sacred?retryWrites=false'
    python mongo/omniboard.py stop

`start` installs on first use, returns once the REST API answers, and prints the dashboard URL.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from blowtorch_mongo.omniboard import install_omniboard, start_omniboard, stop_omniboard  # noqa: E402

RUN_DIR = Path(__file__).resolve().parent / ".run"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("install", help="install omniboard from npm into mongo/.omniboard/ (skipped if present)")
    start = sub.add_parser("start", help="start Omniboard in the background")
    target = start.add_mutually_exclusive_group(required=True)
    target.add_argument("-m", metavar="HOST:PORT:DB", help="MongoDB host, port and database")
    target.add_argument("--mu", metavar="URI", help="MongoDB URI naming the database")
    start.add_argument("--port", type=int, default=None, help="default: a free port")
    start.add_argument("--timeout", type=float, default=60.0)
    for p in (start, sub.add_parser("stop", help="stop the Omniboard started by `start`")):
        p.add_argument("--pid-file", type=Path, default=RUN_DIR / "omniboard.pid")
    args = parser.parse_args()

    if args.command == "install":
        print(install_omniboard())
    elif args.command == "start":
        parts = args.m.split(":") if args.m else ["127.0.0.1", "27017", "sacred"]  # defaults unused with --mu
        if len(parts) != 3:
            parser.error("-m takes exactly HOST:PORT:DB")  # as Omniboard's own -m
        handle = start_omniboard(
            parts[0],
            int(parts[1]),
            parts[2],
            port=args.port,
            mongo_uri=args.mu,
            pid_file=args.pid_file,
            log_path=RUN_DIR / "omniboard.log",
            timeout=args.timeout,
        )
        print(f"omniboard pid {handle.pid} (pid file {args.pid_file}, log {handle.log_path})", file=sys.stderr)
        print(handle.url)
    else:
        if not args.pid_file.exists():
            sys.exit(f"no pid file at {args.pid_file}: nothing to stop")
        pid = stop_omniboard(args.pid_file)
        print(f"stopped omniboard pid {pid}" if pid else "omniboard was not running; removed the stale pid file")


if __name__ == "__main__":
    try:
        main()
    except (RuntimeError, OSError) as err:  # expected failures: a message, not a traceback
        sys.exit(f"{Path(__file__).name}: {err}")
