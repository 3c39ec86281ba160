"""One sacred run of a run directory as the ``blowtorch`` command shows it: a :class:`Leg` of its chain.

Its status (``DEAD?`` for a run that says RUNNING but whose process is gone), epochs done and
``max_epochs``, the checkpoint metric's best, times and host come from its sacred record, and for the
newest run of a directory also from ``status.json`` and the checkpoints (a killed run wrote no final
record); a run without a sacred record (``-u``) is read from its run directory alone.
"""

from __future__ import annotations

import datetime as dt
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blowtorch.checkpoint_files import MANIFEST
from blowtorch.cli.progress import Best, best_from_checkpoint, epochs_from_checkpoints, epochs_logged, log_file_metrics
from blowtorch.cli.storage import StoredRun, utc_time
from blowtorch.loggers.base import RUNNING
from blowtorch.run_lock import is_in_use
from blowtorch.run_status import STATUS_FILE
from blowtorch.rundir import CHECKPOINTS, TIMESTAMP_FORMAT

#: What ``blowtorch runs`` shows for a run that says RUNNING but whose process is gone.
DEAD = "DEAD?"
#: A RUNNING run whose last sacred heartbeat is older than this is probably dead (Omniboard's PROBABLY_DEAD: 120 s).
HEARTBEAT_TIMEOUT = dt.timedelta(seconds=120)


@dataclass
class Leg:
    """One sacred run of a run directory, or the directory's only, unrecorded run (``-u``)."""

    stored: StoredRun | None
    status: str  # COMPLETED, FAILED, INTERRUPTED, RUNNING, DEAD? ('?' when nothing says)
    epochs_done: int
    max_epochs: int | None
    best: Best | None
    started: dt.datetime | None
    stopped: dt.datetime | None  # the stop time; a dead run's last heartbeat; None while it runs
    host: str | None

    @property
    def id(self) -> str | None:
        """The sacred run's id in the default storage (its directory number); None for ``-u``."""
        return self.stored.id if self.stored is not None else None

    @property
    def resumed_from(self) -> dict[str, Any] | None:
        return self.stored.resumed_from if self.stored is not None else None

    @property
    def resumed_at(self) -> str | None:
        """``run N at epoch E``: where this run continued (E: the first epoch it trained)."""
        origin = self.resumed_from
        if origin is None:
            return None
        epoch = int(origin.get("epoch", 0)) + (0 if origin.get("inside_epoch") else 1)
        parent = origin.get("parent_run_id")
        return f"{'run ' + str(parent) if parent is not None else 'an unrecorded run'} at epoch {epoch}"

    @property
    def duration(self) -> dt.timedelta | None:
        if self.started is None:
            return None
        end = self.stopped or (dt.datetime.now(dt.timezone.utc) if self.status == RUNNING else None)
        return end - self.started if end is not None else None

    def as_json(self) -> dict[str, Any]:
        return {
            "sacred_id": self.id,
            "status": self.status,
            "epochs": self.epochs_done,
            "max_epochs": self.max_epochs,
            "best": None if self.best is None else self.best.as_json(),
            "start_time": _iso(self.started),
            "stop_time": _iso(self.stopped),
            "duration_s": None if self.duration is None else round(self.duration.total_seconds(), 3),
            "host": self.host,
            "resumed_from": self.resumed_from,
            "comment": self.stored.comment if self.stored is not None else None,
        }


def sacred_leg(path: Path, stored: StoredRun, status_file: dict[str, Any] | None, newest: bool) -> Leg:
    status = stored.status
    # No heartbeat yet: sacred's first one comes 10 s after the start, so the start time is the last sign of life.
    last_sign = stored.heartbeat or stored.start_time
    dead = status == RUNNING and (not newest or _process_gone(path, stored.hostname, last_sign))
    resumed = stored.resumed_from
    start_epoch = 0 if resumed is None else int(resumed.get("epoch", 0)) + (0 if resumed.get("inside_epoch") else 1)
    epochs = max(start_epoch, epochs_logged({name: s.steps for name, s in stored.metrics().items()}))
    if newest and dead:  # its last metrics may not have reached the storage (see RunHistory.metrics)
        epochs = max(epochs, epochs_from_checkpoints(path), epochs_logged(log_file_metrics(path)))
    final = status_file if status_file is not None and status_file.get("status") != RUNNING else None
    if newest and final is not None:
        epochs = max(epochs, int(final.get("epoch") or 0))
    return Leg(
        stored=stored,
        status=DEAD if dead else status,
        epochs_done=epochs,
        max_epochs=_int(stored.info.get("max_epochs")) or _int((status_file or {}).get("max_epochs")),
        best=(
            Best.from_result(stored.run.get("result"))
            or Best.from_json(stored.info.get("best"))
            or (Best.from_json(final.get("best")) if final is not None else None)
            or (best_from_checkpoint(path) if newest and dead else None)
        ),
        started=stored.start_time,
        stopped=stored.stop_time or (stored.heartbeat or (_last_written(path) if newest else None) if dead else None),
        host=stored.hostname,
    )


def unrecorded_leg(path: Path, status_file: dict[str, Any] | None) -> Leg:
    """A run without a sacred record (``-u``, or killed before sacred stored it): the run directory alone."""
    status = str(status_file["status"]) if status_file else "?"
    dead = status == RUNNING and _process_gone(path, None, None)
    final = status_file if status_file is not None and status != RUNNING else None
    epochs = max(
        int(final.get("epoch") or 0) if final else 0,
        epochs_from_checkpoints(path),
        epochs_logged(log_file_metrics(path)),
    )
    created = dt.datetime.strptime(path.name[:19], TIMESTAMP_FORMAT).astimezone()
    updated = utc_time((status_file or {}).get("updated"))  # status.json writes it with its zone
    return Leg(
        stored=None,
        status=DEAD if dead else status,
        epochs_done=epochs,
        max_epochs=_int((status_file or {}).get("max_epochs")),
        best=(Best.from_json(final.get("best")) if final else None) or (best_from_checkpoint(path) if dead else None),
        started=created,
        stopped=updated if status != RUNNING else (_last_written(path) if dead else None),
        host=None,
    )


def _process_gone(path: Path, hostname: str | None, last_sign: dt.datetime | None) -> bool:
    """Whether a run that says RUNNING has stopped: its last heartbeat is old (as Omniboard's PROBABLY_DEAD),
    or it ran on this machine and no process holds its run directory any more."""
    if last_sign is not None and dt.datetime.now(dt.timezone.utc) - last_sign > HEARTBEAT_TIMEOUT:
        return True
    return hostname in (None, platform.node()) and not is_in_use(path)


def _last_written(run_dir: Path) -> dt.datetime | None:
    """When a run that was killed last wrote to its directory: about when it died."""
    times = [p.stat().st_mtime for p in (run_dir / "log.txt", run_dir / CHECKPOINTS / MANIFEST, run_dir / STATUS_FILE) if p.exists()]
    return dt.datetime.fromtimestamp(max(times), dt.timezone.utc) if times else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None



def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
