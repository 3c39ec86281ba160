"""The file storage observer every run gets by default."""

from __future__ import annotations

from pathlib import Path

from sacred.observers import FileStorageObserver

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
