"""The runs of a ``save_path`` as records: each run directory with the sacred runs that trained in it.

This is the one place that reads a ``save_path``; every subcommand works on its records.

A resumed run is a new sacred run that continues in its first run's directory, so a run directory
holds a *chain*: its first sacred run and each continuation, oldest first (the :class:`Leg` s of a
:class:`RunHistory`). A sacred run belongs to the run directory its ``info.run_dir`` names; before
its first heartbeat with info it has none, and then the first run is found by its number (the run
directory's number is its storage number, see :mod:`blowtorch.rundir`) and a continuation by the
directory's ``status.json``. A run started with ``-u`` has no sacred record: its directory alone
says what there is to say.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blowtorch.cli.legs import DEAD, Leg, sacred_leg, unrecorded_leg
from blowtorch.cli.progress import log_file_metrics
from blowtorch.cli.storage import StoredRun, read_storage
from blowtorch.errors import MissingFileError
from blowtorch.loggers.base import RUNNING
from blowtorch.run_status import read_status
from blowtorch.rundir import SACRED_DIR, TIMESTAMP_FORMAT, run_name_of

__all__ = ["DEAD", "Leg", "RunHistory", "SavePath", "read_save_path"]


@dataclass
class RunHistory:
    """A run directory and its chain of sacred runs, oldest first."""

    path: Path
    legs: list[Leg]
    status_file: dict[str, Any] | None
    problems: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def run_name(self) -> str:
        return run_name_of(self.path.name) or self.path.name

    @property
    def number(self) -> int:
        return int(self.path.name.rsplit("-", 1)[1])

    @property
    def newest(self) -> Leg:
        return self.legs[-1]

    @property
    def status(self) -> str:
        return self.newest.status

    @property
    def experiment(self) -> str | None:
        stored = self.newest.stored
        if stored is not None and stored.experiment_name:
            return stored.experiment_name
        return str(self.status_file["experiment"]) if self.status_file and self.status_file.get("experiment") else None

    @property
    def created(self) -> dt.datetime:
        """When the directory was made, from its name (local time)."""
        return dt.datetime.strptime(self.path.name[:19], TIMESTAMP_FORMAT).astimezone()

    @property
    def last_activity(self) -> dt.datetime:
        """When its newest run started: newest first means the runs last started (or resumed) first."""
        return max([self.created, *(leg.started for leg in self.legs if leg.started is not None)])

    def find(self, sacred_id: str) -> Leg | None:
        return next((leg for leg in self.legs if leg.id == sacred_id), None)

    def metrics(self) -> dict[str, dict[int, float]]:
        """Every metric of the chain as one series, x -> value; a later run's value for the same x wins
        (a resume from an older checkpoint trains those epochs again). ``-u`` runs: from ``log.txt``."""
        combined: dict[str, dict[int, float]] = {}
        for leg in self.legs:
            if leg.stored is not None:
                for name, series in leg.stored.metrics().items():
                    combined.setdefault(name, {}).update(zip(series.steps, series.values, strict=True))
        if self.newest.status in (RUNNING, DEAD) or any(leg.stored is None or leg.stored.metrics_damaged for leg in self.legs):
            # sacred hands metrics to its observers with its heartbeat (every 10 s): a killed run's last ones
            # are only in log.txt (six significant digits), which has every epoch of the chain; so has a -u run,
            # and a run whose metrics.json is damaged
            for name, values in log_file_metrics(self.path).items():
                combined[name] = {**values, **combined.get(name, {})}
        return {name: dict(sorted(values.items())) for name, values in combined.items()}

    def all_problems(self) -> list[str]:
        return [*self.problems, *(p for leg in self.legs if leg.stored is not None for p in leg.stored.problems)]

    def as_json(self) -> dict[str, Any]:
        newest = self.newest
        return {
            "run_dir": str(self.path),
            "name": self.name,
            "run_name": self.run_name,
            "experiment": self.experiment,
            "status": newest.status,
            "epochs": newest.epochs_done,
            "max_epochs": newest.max_epochs,
            "best": None if newest.best is None else newest.best.as_json(),
            "runs": [leg.as_json() for leg in self.legs],
            "problems": self.all_problems(),
        }


@dataclass
class SavePath:
    """Everything under one ``save_path``."""

    path: Path
    histories: list[RunHistory]  # newest first
    orphans: list[StoredRun]  # sacred runs whose run directory is gone

    def problems(self) -> list[str]:
        lines = [f"{h.name}: {p}" for h in self.histories for p in h.all_problems()]
        lines += [f"{SACRED_DIR}/{o.number}: no run directory in {self.path} belongs to this sacred run (removed?)" for o in self.orphans]
        return lines


def read_save_path(save_path: Path) -> SavePath:
    """The run directories of ``save_path`` with their sacred runs, newest first; a :class:`MissingFileError`
    (whose message says what to pass) when ``save_path`` is not a directory."""
    save_path = save_path.absolute()
    if not save_path.exists():
        raise MissingFileError(f"{save_path} does not exist; pass the save_path the runs were written to (default: train_logs)")
    if not save_path.is_dir():
        raise MissingFileError(f"{save_path} is a file, not a save_path directory of run directories")
    directories = sorted((p for p in save_path.iterdir() if run_name_of(p.name) is not None and p.is_dir()), key=lambda p: p.name)
    chains: dict[str, list[StoredRun]] = {d.name: [] for d in directories}
    by_number = {d.name.rsplit("-", 1)[1]: d.name for d in directories}
    statuses = {d.name: read_status(d) for d in directories}
    by_status = {str(s["sacred_run_id"]): name for name, s in statuses.items() if s and s.get("sacred_run_id") is not None}
    orphans = []
    for stored in read_storage(save_path):
        owner = stored.run_dir_name if stored.run_dir_name in chains else by_number.get(stored.id) or by_status.get(stored.id)
        if owner is None or owner not in chains:
            orphans.append(stored)
        else:
            chains[owner].append(stored)
    histories = [_history(d, chains[d.name], statuses[d.name]) for d in directories]
    # Whole seconds, as the directory names have them (all a -u run has); then the number: the later one.
    histories.sort(key=lambda h: (h.last_activity.replace(microsecond=0), h.number), reverse=True)
    return SavePath(save_path, histories, orphans)


def _history(path: Path, stored_runs: list[StoredRun], status_file: dict[str, Any] | None) -> RunHistory:
    never = dt.datetime.max.replace(tzinfo=dt.timezone.utc)
    stored_runs.sort(key=lambda s: (s.start_time or never, s.number))
    history = RunHistory(path, [], status_file)
    if status_file is None:
        reason = "cannot be read" if (path / "status.json").exists() else "is missing"
        history.problems.append(
            f"status.json {reason}: the run was killed while it started, or the directory was not written by blowtorch"
        )
    if not stored_runs:
        history.legs.append(unrecorded_leg(path, status_file))
        return history
    for index, stored in enumerate(stored_runs):
        newest = index == len(stored_runs) - 1
        history.legs.append(sacred_leg(path, stored, status_file if newest else None, newest))
    return history
