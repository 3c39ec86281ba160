"""blowtorch's default sacred file storage ``<save_path>/sacred/<N>/``, read back without sacred.

sacred's ``FileStorageObserver`` writes ``run.json`` (status, times, host, meta, experiment with its
sources under ``_sources/``, the result or the fail trace), ``config.json``, ``info.json`` (only once
the run has set an info entry, at its next heartbeat), ``metrics.json`` and ``cout.txt``, plus the
artifacts it was given. A file that cannot be read is a problem of that run (named in one line),
never an error of the whole listing.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blowtorch.rundir import SACRED_DIR


@dataclass(frozen=True)
class Series:
    """One metric of one sacred run: x values (epochs, or global steps for ``*_step`` phases) and values."""

    steps: list[int]
    values: list[float]
    timestamps: list[str]


@dataclass
class StoredRun:
    """One sacred run as the default file storage recorded it (``<save_path>/sacred/<number>/``)."""

    number: int
    path: Path
    run: dict[str, Any]  # run.json; {} when it cannot be read
    info: dict[str, Any]  # info.json; {} before the run's first heartbeat with info
    problems: list[str] = field(default_factory=list)
    metrics_damaged: bool = False  # metrics.json exists but cannot be read
    _metrics: dict[str, Series] | None = None

    @property
    def id(self) -> str:
        return str(self.number)

    @property
    def status(self) -> str:
        return str(self.run.get("status", "?"))

    @property
    def experiment(self) -> dict[str, Any]:
        value = self.run.get("experiment")
        return value if isinstance(value, dict) else {}

    @property
    def experiment_name(self) -> str | None:
        name = self.experiment.get("name")
        return str(name) if name is not None else None

    @property
    def hostname(self) -> str | None:
        host = self.run.get("host")
        return str(host.get("hostname")) if isinstance(host, dict) and host.get("hostname") else None

    @property
    def start_time(self) -> dt.datetime | None:
        return utc_time(self.run.get("start_time"))

    @property
    def stop_time(self) -> dt.datetime | None:
        return utc_time(self.run.get("stop_time"))

    @property
    def heartbeat(self) -> dt.datetime | None:
        return utc_time(self.run.get("heartbeat"))

    @property
    def run_dir_name(self) -> str | None:
        """The name of the run directory the run trained in (``info.run_dir``), once it was recorded."""
        run_dir = self.info.get("run_dir")
        return Path(run_dir).name if isinstance(run_dir, str) and run_dir else None

    @property
    def resumed_from(self) -> dict[str, Any] | None:
        value = self.info.get("resumed_from")
        return value if isinstance(value, dict) else None

    @property
    def comment(self) -> str | None:
        meta = self.run.get("meta")
        comment = meta.get("comment") if isinstance(meta, dict) else None
        return str(comment) if comment else None

    def config(self) -> dict[str, Any] | None:
        """``config.json``; None (and a problem) when it cannot be read."""
        value = self._read_json("config.json", required=True)
        return value if isinstance(value, dict) else None

    def metrics(self) -> dict[str, Series]:
        """``metrics.json`` by metric name; empty (and a problem) when it cannot be read."""
        if self._metrics is None:
            self._metrics = {}
            raw = self._read_json("metrics.json", required=False)
            self.metrics_damaged = raw is None and (self.path / "metrics.json").exists()
            if isinstance(raw, dict):
                try:
                    self._metrics = {str(name): _series(m) for name, m in raw.items()}
                except (KeyError, TypeError, ValueError) as error:
                    self.metrics_damaged = True
                    self._problem(f"{self.relative('metrics.json')} does not hold sacred metrics ({type(error).__name__}: {error})")
            elif raw is not None:
                self.metrics_damaged = True
                self._problem(f"{self.relative('metrics.json')} does not hold sacred metrics (a JSON object by metric name)")
        return self._metrics

    def relative(self, filename: str) -> str:
        """``sacred/<N>/<filename>``: how messages name the run's files."""
        return f"{SACRED_DIR}/{self.number}/{filename}"

    def _read_json(self, filename: str, required: bool) -> Any:
        try:
            return json.loads((self.path / filename).read_text(encoding="utf-8"))
        except FileNotFoundError:
            if required:
                self._problem(f"{self.relative(filename)} is missing")
        except (OSError, ValueError) as error:
            self._problem(f"{self.relative(filename)} cannot be read: {error}")
        return None

    def _problem(self, message: str) -> None:
        if message not in self.problems:
            self.problems.append(message)


def read_storage(save_path: Path) -> list[StoredRun]:
    """Every numbered run directory of ``<save_path>/sacred``, by number."""
    base = save_path / SACRED_DIR
    try:
        entries = sorted((int(p.name), p) for p in base.iterdir() if p.name.isdecimal() and p.is_dir())
    except FileNotFoundError:
        return []
    return [read_stored_run(number, path) for number, path in entries]


def read_stored_run(number: int, path: Path) -> StoredRun:
    stored = StoredRun(number, path, {}, {})
    run = stored._read_json("run.json", required=True)
    if isinstance(run, dict):
        stored.run = run
    elif run is not None:
        stored._problem(f"{stored.relative('run.json')} is not a sacred run record (a JSON object)")
    info = stored._read_json("info.json", required=False)
    stored.info = info if isinstance(info, dict) else {}
    return stored


def _series(metric: dict[str, Any]) -> Series:
    steps, values = [int(s) for s in metric["steps"]], [float(v) for v in metric["values"]]
    if len(steps) != len(values):
        raise ValueError(f"{len(steps)} steps but {len(values)} values")
    return Series(steps, values, [str(t) for t in metric.get("timestamps", [])])


def utc_time(value: Any) -> dt.datetime | None:
    """A time as sacred stores it (ISO format, UTC without a zone) as an aware datetime; None if absent."""
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=dt.timezone.utc) if parsed.tzinfo is None else parsed
