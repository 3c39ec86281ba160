"""``status.json`` in every run directory, and ``resume="auto"``: the newest unfinished run to continue.

A cluster job that is preempted and requeued runs the same command line again. With
``--resume auto`` (or ``run(..., resume="auto")``) it continues the newest unfinished run of the
same experiment in ``save_path`` instead of starting over, so the job script needs no path.

``status.json`` says what the run directory belongs to and how its last run ended. It says
``RUNNING`` from the start and the final status (``COMPLETED``, ``INTERRUPTED``, ``FAILED``) when the
run ends, with the epochs done (``epoch``), ``max_epochs`` and the checkpoint metric's best so far
(``best``: ``metric``, ``value``, ``epoch``; None before the first one). A run killed with SIGKILL,
or on a node that was lost, is left at ``RUNNING``, and the directory's lock (see
:mod:`blowtorch.run_lock`) tells such a run from one that still trains.
The file is replaced atomically, so a reader never sees half of it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blowtorch.checkpoint_files import CheckpointStore
from blowtorch.loggers.base import COMPLETED
from blowtorch.run_lock import is_in_use
from blowtorch.rundir import CHECKPOINTS, run_name_of

STATUS_FILE = "status.json"
#: What ``resume="auto"`` (and ``--resume auto``) means; a directory called ``auto`` is ``./auto``.
AUTO = "auto"


def write_status(
    run_dir: Path,
    status: str,
    experiment: str,
    sacred_run_id: Any,
    epoch: int,
    global_step: int,
    max_epochs: int | None = None,
    best: dict[str, Any] | None = None,
) -> None:
    record = {
        "status": status,
        "experiment": experiment,
        "sacred_run_id": None if sacred_run_id is None else str(sacred_run_id),
        "epoch": epoch,
        "global_step": global_step,
        "max_epochs": max_epochs,
        "best": best,
        "updated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    temporary = run_dir / f".{STATUS_FILE}.tmp"
    temporary.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, run_dir / STATUS_FILE)


def read_status(run_dir: Path) -> dict[str, Any] | None:
    """The run directory's status record; None if it has none or it cannot be read."""
    try:
        record = json.loads((run_dir / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("status"), str) else None


@dataclass(frozen=True)
class Unfinished:
    """A run directory that ``resume="auto"`` can continue."""

    path: Path
    status: str
    epoch: int


def find_unfinished_run(save_path: Path, experiment: str, run_name: str | None) -> Unfinished | None:
    """The newest run directory in ``save_path`` of ``experiment`` (and named ``run_name``, if given)
    that did not complete, has a checkpoint, and is not in use by a running process; None if none.

    "Newest" is the one whose status changed last: the run that stopped most recently.
    """
    if not save_path.is_dir():
        return None
    found: list[tuple[int, Unfinished]] = []
    for entry in save_path.iterdir():
        name = run_name_of(entry.name)
        if name is None or not entry.is_dir() or (run_name is not None and name != run_name):
            continue
        status = read_status(entry)
        if status is None or status.get("experiment") != experiment or status["status"] == COMPLETED:
            continue
        if not CheckpointStore(entry / CHECKPOINTS).newest_first() or is_in_use(entry):
            continue
        changed = (entry / STATUS_FILE).stat().st_mtime_ns
        found.append((changed, Unfinished(entry, status["status"], int(status.get("epoch", 0)))))
    return max(found, key=lambda item: item[0])[1] if found else None
