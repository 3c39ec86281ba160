"""The observers blowtorch attaches itself: the default file storage, and MongoDB for ``-m`` and URIs."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from sacred.observers import FileStorageObserver

from blowtorch.errors import DatabaseError
from blowtorch.rundir import SACRED_DIR, claim_number
from blowtorch.sacred_bridge.mongo import DatabaseObserver, observer_for_sacred_arg, observer_for_uri


class DefaultFileStorageObserver(FileStorageObserver):
    """sacred's ``FileStorageObserver`` under ``<save_path>/sacred``, numbering its runs together with the run directories.

    It stores a run under the number free both here and among the run directories in
    ``save_path`` (an unrecorded ``-u`` run's directory holds a number too; see
    :mod:`blowtorch.rundir`). When another observer (``-F``, MongoDB) assigned the run id, it
    tries that number first; where it is taken, plain file storage would fail the whole run
    before training, this one takes the next free number, and the run keeps the id it was given.
    The run directory then gets this storage's number: :attr:`number`.
    """

    def __init__(self, save_path: Path) -> None:
        super().__init__(Path(save_path) / SACRED_DIR)
        self.save_path = Path(save_path)

    def _make_run_dir(self, _id):  # type: ignore[no-untyped-def]
        os.makedirs(self.basedir, exist_ok=True)
        self.dir = None
        first = int(_id) if str(_id).isdecimal() else None  # a MongoDB id, or -F's; never a name like 'abc'
        _, path = claim_number(self.save_path, self._make_numbered_dir, first)
        self.dir = str(path)

    def _make_numbered_dir(self, number: int) -> Path:
        path = Path(self.basedir) / str(number)
        path.mkdir()
        return path

    @property
    def number(self) -> int | None:
        """The number of the run's directory here, once the run has started."""
        return int(Path(self.dir).name) if self.dir is not None else None


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

