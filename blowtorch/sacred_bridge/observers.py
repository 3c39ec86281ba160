"""The observers blowtorch attaches itself: the default file storage, and MongoDB for ``-m`` and URIs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sacred.observers import FileStorageObserver

from blowtorch.errors import DatabaseError
from blowtorch.sacred_bridge.mongo import DatabaseObserver, observer_for_sacred_arg, observer_for_uri

SACRED_DIR = "sacred"


class DefaultFileStorageObserver(FileStorageObserver):
    """sacred's ``FileStorageObserver`` under ``<save_path>/sacred``, which never fails on an id clash.

    When a higher-priority observer (MongoDB) assigns the run id, plain file storage creates
    ``<basedir>/<id>`` and fails the whole run before training if that directory exists from an
    earlier run against another database. This one then stores the run in the next free directory
    instead; the run keeps the id the database gave it.
    """

    def __init__(self, save_path: Path) -> None:
        super().__init__(Path(save_path) / SACRED_DIR)

    def _make_run_dir(self, _id):  # type: ignore[no-untyped-def]
        if _id is not None:
            try:
                return super()._make_run_dir(_id)
            except FileExistsError:
                pass
        return super()._make_run_dir(None)


def database_observers(sacred_spec: str | None, uris: Sequence[str | None], db_name: str | None, timeout: float) -> list[DatabaseObserver]:
    """MongoDB observers for sacred's ``-m host:port:db`` and for full URIs (``--mongo_uri``, ``Run(mongo_uri=)``).

    blowtorch builds the observer of ``-m`` itself rather than letting sacred do it: the same
    documents, with short timeouts and a connection check before training.
    """
    observers = []
    if sacred_spec:
        try:
            observers.append(observer_for_sacred_arg(sacred_spec, timeout))
        except (ValueError, AttributeError) as error:  # sacred's parser fails with AttributeError on a URI
            raise DatabaseError(
                f"-m {sacred_spec!r} is not of the form [host:port:]db[.collection]; for a full mongodb:// URI "
                f"use --mongo_uri"
            ) from error
    observers.extend(observer_for_uri(uri, db_name, timeout) for uri in uris if uri)
    return observers

