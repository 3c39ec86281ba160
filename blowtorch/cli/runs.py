"""``blowtorch runs [SAVE_PATH]``: one line per run, newest first; a resumed run as its chain."""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
from pathlib import Path
from typing import Any

from blowtorch.cli import OK
from blowtorch.cli.records import DEAD, Leg, RunHistory
from blowtorch.cli.resolve import open_save_path
from blowtorch.cli.text import duration, local_time, table
from blowtorch.loggers.base import COMPLETED, FAILED, INTERRUPTED, RUNNING

STATUSES = (COMPLETED, FAILED, INTERRUPTED, RUNNING, DEAD)
HEADERS = ("RUN", "ID", "STATUS", "EPOCHS", "BEST", "STARTED", "DURATION", "HOST", "RESUMED FROM")
#: The RUN cell of a continuation: the run directory's name is on its first run's line above.
CONTINUED = "  `- resumed"


def register(subcommands: Any) -> None:
    parser = subcommands.add_parser(
        "runs",
        help="list the runs of a save_path, newest first",
        description=(
            "One line per run, newest first: run directory, sacred id, status, epochs done / max_epochs, the "
            "checkpoint metric's best value @ its epoch, start time (local), duration, host, and the run it was "
            "resumed from. A resumed run is listed as its chain: the first run, then each continuation. A run "
            "that says RUNNING but whose process is gone (its heartbeat is over 2 minutes old, or no process "
            "on this machine holds its directory) shows as DEAD?."
        ),
    )
    parser.add_argument("save_path", nargs="?", default="train_logs", metavar="SAVE_PATH", help="default: train_logs")
    parser.add_argument(
        "--status", action="append", type=_status, metavar="STATUS",
        help=f"only runs whose newest run has this status ({', '.join(STATUSES)}); may be repeated",
    )  # fmt: skip
    parser.add_argument("--name", metavar="GLOB", help="only runs whose name or directory name matches, e.g. 'lr=*'")
    parser.add_argument("--last", type=_positive, metavar="N", help="only the N newest runs")
    parser.add_argument("--json", action="store_true", help="print a JSON list of records instead of the table")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    runs = open_save_path(Path(args.save_path))
    histories = [h for h in runs.histories if _selected(h, args)][: args.last]
    if args.json:
        print(json.dumps([h.as_json() for h in histories], indent=2))
    elif histories:
        print(table(HEADERS, [row for h in histories for row in _rows(h)]))
    else:
        print(f"no runs in {runs.path}" + (" match the filters" if runs.histories else ""), file=sys.stderr)
    for problem in runs.problems():
        print(f"blowtorch runs: warning: {problem}", file=sys.stderr)
    return OK


def _selected(history: RunHistory, args: argparse.Namespace) -> bool:
    if args.status and history.status not in args.status:
        return False
    return not args.name or any(fnmatch.fnmatchcase(n, args.name) for n in (history.run_name, history.name))


def _rows(history: RunHistory) -> list[list[str]]:
    return [_row(history.name if index == 0 else CONTINUED, leg) for index, leg in enumerate(history.legs)]


def _row(label: str, leg: Leg) -> list[str]:
    return [
        label,
        leg.id or "-",
        leg.status,
        f"{leg.epochs_done}/{leg.max_epochs if leg.max_epochs is not None else '?'}",
        str(leg.best) if leg.best is not None else "-",
        local_time(leg.started),
        duration(leg.duration),
        leg.host or "-",
        leg.resumed_at or "-",
    ]


def _status(text: str) -> str:
    status = text.upper()
    status = DEAD if status in ("DEAD", DEAD) else status
    if status not in STATUSES:
        raise argparse.ArgumentTypeError(f"unknown status {text!r}; use one of {', '.join(STATUSES)}")
    return status


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of runs (1 or more), got {text!r}")
    return value
