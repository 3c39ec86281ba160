"""``blowtorch push RUN... --mongo_uri URI`` (or ``-m HOST:PORT:DB``): runs recorded offline, into MongoDB.

Each sacred run of the named runs (a resumed run: its whole chain, oldest first; a sacred id: that
run alone) is stored as sacred's MongoObserver would have stored it live (see
:mod:`blowtorch.sacred_bridge.push`). Pushing again changes nothing; ``--update`` completes a record
that stopped early. What was pushed where is recorded in the document (``pushed``) and in the run
directory (``pushed.json``). A run that cannot be pushed gets one line; the others are still pushed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Any

from blowtorch.cli import NOT_FOUND, OK, CommandError
from blowtorch.cli.records import Leg, RunHistory
from blowtorch.cli.resolve import Selection, add_save_path_option, resolve
from blowtorch.errors import BlowtorchError
from blowtorch.loggers.base import RUNNING

PUSHED_FILE = "pushed.json"


def register(subcommands: Any) -> None:
    parser = subcommands.add_parser(
        "push",
        help="store runs from the file storage in MongoDB, as if they had been recorded live",
        description=(
            "Store finished, interrupted (or killed) runs from the default file storage in MongoDB exactly as "
            "sacred's MongoObserver would have stored them live: run document, metrics, sources in GridFS and the "
            "run directory's files as artifacts, so that Omniboard shows them. A resumed run is pushed with its "
            "whole chain; a sacred id pushes that run alone. Pushing a run again changes nothing; a record that "
            "stopped early (the server went away mid-run) is completed with --update."
        ),
    )
    parser.add_argument("runs", nargs="+", metavar="RUN", help="runs, each named as for 'blowtorch show'")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("-M", "--mongo_uri", dest="mongo_uri", metavar="URI",
                        help="a MongoDB URI; the database is its path (default: sacred)")  # fmt: skip
    target.add_argument("-m", "--mongo_db", dest="mongo_db", metavar="HOST:PORT:DB", help="as sacred's -m: [host:port:]db")
    parser.add_argument("--update", action="store_true", help="complete runs whose record in MongoDB is incomplete, keeping their ids")
    parser.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS", help="how long to wait for the server (default: 5)")
    add_save_path_option(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from blowtorch.sacred_bridge.push import connect

    selections, failed = [], False
    cache: dict[Path, Any] = {}
    for spec in args.runs:
        try:
            selections.append(resolve(spec, Path(args.save_path), cache))
        except CommandError as error:  # one line; the other runs are still pushed
            print(f"blowtorch push: {error}", file=sys.stderr)
            failed = True
    try:
        observer = connect(args.mongo_uri, args.mongo_db, args.timeout)
    except BlowtorchError as error:  # DatabaseError, or MissingExtraError without pymongo
        raise CommandError(str(error)) from None
    for selection in _unique(selections):
        for leg in selection.legs:
            try:
                print(_push_leg(observer, selection.history, leg, args.update))
            except CommandError as error:
                print(f"blowtorch push: {error}", file=sys.stderr)
                failed = True
    return NOT_FOUND if failed else OK


def _push_leg(observer: Any, history: RunHistory, leg: Leg, update: bool) -> str:
    """Push one sacred run; what happened, in one line (a :class:`CommandError` if it cannot be pushed)."""
    from blowtorch.sacred_bridge.push import complete, find_record, missing_in, push

    label = f"{history.name} (sacred run {leg.id})"
    run = _offline_run(history, leg, label)
    where = observer.description
    provenance = {"file_storage": str(run.storage_dir), "run_dir": str(history.path), "how": "update" if update else "push"}
    try:
        record = find_record(observer, run)
        if record is None:
            mongo_id = push(observer, run, provenance)
            _remember(history, leg, where, mongo_id, "push")
            killed = " (killed: RUNNING, as sacred recorded it)" if leg.stored and leg.stored.status == RUNNING else ""
            return f"pushed {label} to {where} as run {mongo_id}{killed}"
        missing = missing_in(observer, record, run)
        if not missing:
            return f"{label} is already in {where} as run {record['_id']}: nothing to push"
        if not update:
            raise CommandError(
                f"{label} is already in {where} as run {record['_id']}, but that record is incomplete "
                f"({'; '.join(missing)}); --update completes it"
            )
        complete(observer, record, run, provenance)
        _remember(history, leg, where, record["_id"], "update")
        return f"completed run {record['_id']} in {where} with {label}: {'; '.join(missing)}"
    except CommandError:
        raise
    except Exception as error:  # the server went away, a source file is gone, ...: this run is not pushed
        raise CommandError(f"pushing {label} to {where} failed: {type(error).__name__}: {str(error)[:300]}") from None


def _offline_run(history: RunHistory, leg: Leg, label: str) -> Any:
    from blowtorch.sacred_bridge.push import OfflineRun

    stored = leg.stored
    if stored is None:
        raise CommandError(f"{history.name} has no sacred record to push: it was started with -u, or killed before sacred stored it")
    if leg.status == RUNNING:
        raise CommandError(f"{label} is still RUNNING; push it once it has ended")
    config, metrics = stored.config(), stored.metrics()
    if stored.problems or config is None or not stored.run.get("start_time"):
        reason = "; ".join(stored.problems) or f"{stored.relative('run.json')} has no start time"
        raise CommandError(f"{label} is not pushed: {reason}")
    try:
        captured = (stored.path / "cout.txt").read_text(encoding="utf-8")
    except FileNotFoundError:
        captured = ""
    return OfflineRun(
        stored.path, stored.run, config, dict(stored.info),
        {name: {"steps": s.steps, "values": s.values, "timestamps": s.timestamps} for name, s in metrics.items()},
        captured,
    )  # fmt: skip


def _remember(history: RunHistory, leg: Leg, where: str, mongo_id: Any, how: str) -> None:
    """Add the push to the run directory's ``pushed.json`` (replaced atomically)."""
    path = history.path / PUSHED_FILE
    try:
        pushes = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pushes = []
    entry = {"sacred_id": leg.id, "database": where, "mongo_id": mongo_id, "how": how,
             "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}  # fmt: skip
    temporary = path.with_name(f".{PUSHED_FILE}.tmp")
    temporary.write_text(json.dumps([*pushes, entry], indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def _unique(selections: list[Selection]) -> list[Selection]:
    seen, unique = set(), []
    for selection in selections:
        key = (selection.history.path, selection.leg.id if selection.leg is not None else None)
        if key not in seen:
            seen.add(key)
            unique.append(selection)
    return unique
