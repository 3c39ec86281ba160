"""MongoDB observers that never cost a training run: short timeouts, a connection check before
training, one report of a mid-run outage, a bounded final retry, and a failure dump on disk.

sacred's own ``MongoObserver`` waits 30 s for an unreachable server, fails the run before its
main function, and after an outage retries the final save ten times. The observer below is the
same observer (same documents, numeric ids, GridFS sources and artifacts) with those edges
filed off; blowtorch builds it for ``-m host:port:db`` as well as for a full URI.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sacred.observers import MongoObserver

from blowtorch.errors import DatabaseError, MissingExtraError

DEFAULT_DB_NAME = "sacred"


class DatabaseObserver(MongoObserver):
    """sacred's ``MongoObserver`` with blowtorch's failure policy."""

    FINAL_ATTEMPTS = 3  # sacred tries 10 times, each waiting for server selection

    def __init__(self, url: str, db_name: str, timeout: float, **kwargs: Any) -> None:
        milliseconds = int(timeout * 1000)
        super().__init__(
            url=url,
            db_name=db_name,
            serverSelectionTimeoutMS=milliseconds,
            connectTimeoutMS=milliseconds,
            socketTimeoutMS=max(milliseconds, 60_000),  # GridFS uploads of big files need time per chunk
            **kwargs,
        )
        self.description = describe(url, db_name)
        self.failure: str | None = None
        self.on_failure: Callable[[str], None] | None = None

    def final_save(self, attempts: int) -> None:
        super().final_save(min(attempts, self.FINAL_ATTEMPTS))

    def log_metrics(self, metrics_by_name: Any, info: Any) -> None:
        self._reporting("metrics", super().log_metrics, metrics_by_name, info)

    def artifact_event(self, name: str, filename: str, metadata: Any = None, content_type: Any = None) -> None:
        self._reporting(f"artifact {name}", super().artifact_event, name, filename, metadata, content_type)

    def _reporting(self, what: str, call: Callable[..., Any], *args: Any) -> None:
        try:
            call(*args)
        except Exception as error:
            if self.failure is None:  # sacred stops calling a failed observer: this is its only report
                self.failure = f"{type(error).__name__}: {error}"
                if self.on_failure is not None:
                    self.on_failure(
                        f"MongoDB {self.description} failed while storing {what} ({self.failure}); it receives "
                        f"nothing more in this run, the run directory and the file storage keep everything"
                    )
            raise


def observer_for_uri(uri: str, db_name: str | None, timeout: float, kind: type[DatabaseObserver] = DatabaseObserver) -> DatabaseObserver:
    """An observer (of class ``kind``) for a full MongoDB URI (auth, TLS, ``retryWrites=false``, ...)."""
    _require_pymongo()
    from pymongo.uri_parser import parse_uri

    try:
        parsed = parse_uri(uri)
    except Exception as error:  # pymongo raises InvalidURI / ConfigurationError / ValueError
        raise DatabaseError(
            f"mongo_uri {_redact(uri)!r} is not a MongoDB URI ({error}); expected e.g. "
            f"mongodb://user:password@host:27017/db?authSource=admin"
        ) from error
    return kind(uri, db_name or parsed.get("database") or DEFAULT_DB_NAME, timeout)


def observer_for_sacred_arg(spec: str, timeout: float, kind: type[DatabaseObserver] = DatabaseObserver) -> DatabaseObserver:
    """What sacred's ``-m [host:port:]db[.collection[:id]][!priority]`` asks for, as a :class:`DatabaseObserver` (or ``kind``)."""
    _require_pymongo()
    from sacred.observers.mongo import parse_mongo_db_arg

    kwargs = parse_mongo_db_arg(spec)
    url = kwargs.pop("url", "localhost:27017")
    db_name = kwargs.pop("db_name", DEFAULT_DB_NAME)
    return kind(url, db_name, timeout, **kwargs)


def _require_pymongo() -> None:
    try:
        import pymongo  # noqa: F401
    except ImportError as error:
        raise MissingExtraError(
            f"recording runs in MongoDB needs the pymongo package ({error}); install it with "
            f"pip install 'blowtorch[mongo]'"
        ) from error


RUN_ADVICE = "-u runs without observers, and mongo_timeout= sets how long to wait"


def check_connections(observers: list[Any], timeout: float, advice: str = RUN_ADVICE) -> None:
    """Ping every MongoDB observer's server; an unreachable one is an error within ``timeout`` seconds,
    whose message ends with ``advice``."""
    for observer in observers:
        if not isinstance(observer, MongoObserver):
            continue
        description = getattr(observer, "description", None) or _describe_client(observer)
        outcome: list[BaseException | None] = []

        def ping(client: Any = observer.runs.database.client, outcome: list[BaseException | None] = outcome) -> None:
            try:
                client.admin.command("ping")
                outcome.append(None)
            except BaseException as error:  # reported below, in the caller's thread
                outcome.append(error)

        # A thread, so that observers built with sacred's 30 s default cannot stall the start either.
        thread = threading.Thread(target=ping, name="blowtorch-mongo-check", daemon=True)
        thread.start()
        thread.join(timeout + 2)  # our observers' own selection timeout ends first, with the better message
        if not outcome or outcome[0] is not None:
            reason = f"{type(outcome[0]).__name__}: {str(outcome[0])[:300]}" if outcome else f"no answer within {timeout:g} s"
            raise DatabaseError(
                f"cannot reach MongoDB {description}: {reason}. Start the server or fix the address; {advice}"
            )


def prepare_for_run(observers: list[Any], run_dir: Path, note: Callable[[str], None]) -> None:
    """Point every MongoDB observer's failure dump into the run directory; report outages to ``note``."""
    for observer in observers:
        if isinstance(observer, MongoObserver):
            # sacred reads failure_dir only at the final save, so setting it now is in time.
            observer.failure_dir = str(run_dir)
        if isinstance(observer, DatabaseObserver):
            observer.on_failure = note


def describe(url: str, db_name: str) -> str:
    return f"{_redact(url)} (database '{db_name}')"


def _describe_client(observer: MongoObserver) -> str:
    client = observer.runs.database.client
    nodes = ", ".join(f"{host}:{port}" for host, port in client.topology_description.server_descriptions())
    return f"{nodes} (database '{observer.runs.database.name}')"


def _redact(url: str) -> str:
    """A URI without its password."""
    scheme, separator, rest = url.partition("://")
    if not separator or "@" not in rest.split("/", 1)[0]:
        return url
    credentials, _, host = rest.partition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"
