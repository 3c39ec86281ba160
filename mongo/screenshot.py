#!/usr/bin/env python3
"""Screenshot a page with headless Chromium (apt-get install -y chromium).

python mongo/screenshot.py http://127.0.0.1:9000/sacred runs.png
python mongo/screenshot.py --run-id 1 --omniboard http://127.0.0.1:9000 run1.png   # metrics plot of run 1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from blowtorch_mongo.omniboard import run_page_url  # noqa: E402
from blowtorch_mongo.screenshot import screenshot  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", nargs="?", help="page to capture (or use --run-id)")
    parser.add_argument("out", type=Path, help="PNG to write")
    parser.add_argument("--run-id", type=int, help="capture this run's detail (metrics plot) in Omniboard")
    parser.add_argument("--omniboard", default="http://127.0.0.1:9000", help="Omniboard base URL for --run-id")
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--height", type=int, default=1000)
    parser.add_argument("--budget-ms", type=int, default=15000, help="virtual time the page gets to render")
    parser.add_argument("--timeout", type=float, default=90.0)
    args = parser.parse_args()
    if (args.url is None) == (args.run_id is None):
        parser.error("give either a URL or --run-id")
    url = args.url or run_page_url(args.omniboard, args.run_id)
    path = screenshot(
        url, args.out, width=args.width, height=args.height, virtual_time_budget_ms=args.budget_ms, timeout=args.timeout
    )
    print(path)


if __name__ == "__main__":
    try:
        main()
    except (RuntimeError, OSError) as err:  # expected failures: a message, not a traceback
        sys.exit(f"{Path(__file__).name}: {err}")
