"""A run recorded by the file storage, stored in MongoDB afterwards exactly as sacred's ``MongoObserver``
would have stored it live.

The run's events are replayed into a ``MongoObserver`` (sacred's own code writes every document): it
starts (the run document; the sources, from the storage's copies, into GridFS), its metrics arrive
(in the order they were first logged), a heartbeat brings the info, the captured output and the
result, the run directory's files are added as artifacts, and the run ends (completed, interrupted
or failed; a run that was killed stays RUNNING, as it would have). A run is known in the database by
what sacred gives every observer alike: experiment name, host and start time (to the millisecond, as
BSON keeps it), so a second push finds the first one, and a run recorded live is found too. Such a
record that stopped early (the server went away mid-run) is *completed*: the missing tail of each
metric, the final info and status, the missing artifacts; it keeps its id.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sacred.dependencies import get_digest
from sacred.observers.mongo import mimetype_detector

from blowtorch.errors import DatabaseError
from blowtorch.sacred_bridge.mongo import DatabaseObserver, check_connections, observer_for_sacred_arg, observer_for_uri

ADVICE = "--timeout sets how long to wait"


@dataclass(frozen=True)
class OfflineRun:
    """What the file storage holds of one sacred run (``<save_path>/sacred/<N>/``)."""

    storage_dir: Path
    run: dict[str, Any]  # run.json
    config: dict[str, Any]  # config.json
    info: dict[str, Any]  # info.json
    metrics: dict[str, dict[str, list[Any]]]  # metrics.json: name -> steps, values, timestamps (ISO)
    captured_out: str  # cout.txt

    @property
    def identity(self) -> dict[str, Any]:
        """The query that finds this run's document: what every observer of the run got alike."""
        start = _time(self.run["start_time"])
        assert start is not None
        return {
            "experiment.name": self.run["experiment"]["name"],
            "host.hostname": self.run["host"]["hostname"],
            "start_time": start.replace(microsecond=start.microsecond // 1000 * 1000),
        }


class PushObserver(DatabaseObserver):
    """sacred's ``MongoObserver`` for runs that already ended: sources from the storage's copies, no
    printing, and a final save that fails loudly instead of retrying and dumping the run into a file."""

    storage_base: Path = Path()

    def save_sources(self, ex_info: dict[str, Any]) -> list[Any]:
        # The file storage keeps each source as _sources/<name>_<md5>.py: the file as it was when the run
        # started, which the script's own path may no longer be. Stored under its original path, as live.
        source_info = []
        for name, stored in ex_info["sources"]:
            copy = self.storage_base / stored
            original = os.path.join(ex_info["base_dir"], name)
            found = self.fs.find_one({"filename": original, "md5": get_digest(str(copy))})
            if found is not None:
                source_info.append([name, found._id])
                continue
            with open(copy, "rb") as handle:
                source_info.append([name, self.fs.put(handle, filename=original)])
        return source_info

    @staticmethod
    def _try_to_detect_content_type(filename: str) -> str | None:
        return mimetype_detector.guess_type(filename)[0]  # sacred's detector, without its print

    @property
    def entry(self) -> dict[str, Any]:
        """The run's document as sacred's observer holds it (after ``started_event``, or set to a record)."""
        entry: dict[str, Any] | None = self.run_entry
        assert entry is not None
        return entry

    def final_save(self, attempts: int) -> None:
        self.runs.update_one({"_id": self.entry["_id"]}, {"$set": self.entry}, upsert=True)


def connect(mongo_uri: str | None, sacred_spec: str | None, timeout: float) -> PushObserver:
    """A :class:`PushObserver` for ``--mongo_uri`` or sacred's ``-m``, its server answering; else a
    :class:`DatabaseError` naming the server (without its password) within about ``timeout`` seconds."""
    if mongo_uri is not None:
        observer = observer_for_uri(mongo_uri, None, timeout, PushObserver)
    else:
        assert sacred_spec is not None
        try:
            observer = observer_for_sacred_arg(sacred_spec, timeout, PushObserver)
        except (ValueError, AttributeError) as error:  # sacred's parser fails with AttributeError on a URI
            raise DatabaseError(
                f"-m {sacred_spec!r} is not of the form [host:port:]db[.collection]; for a mongodb:// URI use --mongo_uri"
            ) from error
    check_connections([observer], timeout, ADVICE)
    assert isinstance(observer, PushObserver)
    return observer


def find_record(observer: PushObserver, run: OfflineRun) -> dict[str, Any] | None:
    """The run's document in the database (pushed before, or recorded live), if there is one."""
    found: dict[str, Any] | None = observer.runs.find_one(run.identity)
    return found


def missing_in(observer: PushObserver, record: dict[str, Any], run: OfflineRun) -> list[str]:
    """What ``record`` lacks of the run, for people; empty when it has everything."""
    missing = []
    if record.get("status") != run.run.get("status"):
        missing.append(f"status {record.get('status')} instead of {run.run.get('status')}")
    short = sum(max(0, len(m["steps"]) - len(have)) for _, m, have in _stored_metrics(observer, record["_id"], run))
    if short:
        missing.append(f"{short} metric values")
    artifacts = [name for name in run.run.get("artifacts", []) if name not in {a["name"] for a in record.get("artifacts", [])}]
    if artifacts:
        missing.append(f"artifacts {', '.join(artifacts)}")
    return missing


def push(observer: PushObserver, run: OfflineRun, provenance: dict[str, Any]) -> int:
    """Store ``run`` as a new document (and its metrics and files); return its id."""
    observer.storage_base = run.storage_dir.parent
    observer.run_entry = None
    record = run.run
    observer.started_event(
        dict(record["experiment"]), record["command"], record["host"], _time(record["start_time"]),
        run.config, record["meta"], None,
    )  # fmt: skip
    info = {key: value for key, value in run.info.items() if key != "metrics"}  # ids of another database's metrics
    observer.log_metrics(_in_logging_order(run.metrics), info)
    _finish(observer, run, info, record.get("artifacts", []), provenance)
    return int(observer.entry["_id"])


def complete(observer: PushObserver, record: dict[str, Any], run: OfflineRun, provenance: dict[str, Any]) -> None:
    """Bring ``record`` (the run's document) up to what the file storage has, keeping its id."""
    observer.storage_base = run.storage_dir.parent
    observer.run_entry = record
    tails = {  # what the live observer did not get to store: each metric after the values it has
        name: {key: metric[key][len(have) :] for key in ("steps", "values", "timestamps")}
        for name, metric, have in _stored_metrics(observer, record["_id"], run)
        if len(metric["steps"]) > len(have)
    }
    info = dict(run.info)
    observer.log_metrics(_in_logging_order(tails), info)
    # Omniboard finds metrics through info.metrics; the record's may name documents a dying server lost
    # (or miss one it kept), so it is made anew from the documents there are.
    ids = {document["name"]: str(document["_id"]) for document in observer.metrics.find({"run_id": record["_id"]}, {"name": 1})}
    info["metrics"] = [{"name": name, "id": ids[name]} for name in _in_logging_order(run.metrics) if name in ids]
    present = {a["name"] for a in record.get("artifacts", [])}
    _finish(observer, run, info, [a for a in run.run.get("artifacts", []) if a not in present], provenance)


def _finish(observer: PushObserver, run: OfflineRun, info: dict[str, Any], artifacts: list[str], provenance: dict[str, Any]) -> None:
    record = run.run
    observer.heartbeat_event(info, run.captured_out, _time(record.get("heartbeat")), record.get("result"))
    for name in artifacts:
        observer.artifact_event(name, str(run.storage_dir / name))
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    observer.entry["pushed"] = {**provenance, "at": now, "by_host": platform.node()}  # where it came from
    stop = _time(record.get("stop_time"))
    if record["status"] == "COMPLETED":
        observer.completed_event(stop, record.get("result"))
    elif record["status"] == "FAILED":
        observer.failed_event(stop, record.get("fail_trace"))
    elif record["status"] != "RUNNING":
        observer.interrupted_event(stop, record["status"])
    else:  # killed: it never ended, and would have stayed RUNNING live too
        observer.final_save(attempts=1)


def _stored_metrics(observer: PushObserver, run_id: Any, run: OfflineRun) -> list[tuple[str, dict[str, list[Any]], list[Any]]]:
    """Each metric of the file storage with the steps its document in the database already has."""
    found = []
    for name, metric in run.metrics.items():
        document = observer.metrics.find_one({"run_id": run_id, "name": name}, {"steps": 1})
        found.append((name, metric, list(document["steps"]) if document else []))
    return found


def _in_logging_order(metrics: dict[str, dict[str, list[Any]]]) -> dict[str, dict[str, list[Any]]]:
    """Metrics as sacred hands them to an observer (timestamps as datetimes), in the order they were first
    logged, which is the order of ``info.metrics`` in a live record."""
    converted = {
        name: {"steps": m["steps"], "values": m["values"], "timestamps": [_time(t) for t in m["timestamps"]]}
        for name, m in metrics.items()
        if m["steps"]
    }
    return dict(sorted(converted.items(), key=lambda item: ([*item[1]["timestamps"], None][0] or dt.datetime.min)))


def _time(value: Any) -> dt.datetime | None:
    """A time as sacred stores it in files (ISO format, UTC) as the naive UTC datetime sacred hands observers."""
    return dt.datetime.fromisoformat(value).replace(tzinfo=None) if isinstance(value, str) else None
