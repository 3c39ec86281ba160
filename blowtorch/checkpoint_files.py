"""The ``checkpoints/`` directory: atomic writes, a manifest of checksums, retention, and finding
the newest checkpoint that is intact.

Every file is written to a temp file in the same directory, flushed and fsynced, then moved into
place with ``os.replace`` and the directory fsynced: a crash leaves the old file or the new one,
never a mix. ``manifest.json`` records each file's CRC-32 and size so that a truncated or corrupt
file (a full disk, a bad copy) is detected by name before anyone loads it. While a file is being
replaced, the manifest accepts both its old and its new checksum, so no crash window can make an
intact file look corrupt.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import re
import shutil
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import torch

from blowtorch.errors import CheckpointError

BEST = "best.pt"
LATEST = "latest.pt"
MANIFEST = "manifest.json"
_EPOCH_FILE = re.compile(r"^epoch-(\d+)\.pt$")
_SPACE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class CheckpointStore:
    """Writes and finds the checkpoints of one run directory."""

    def __init__(self, directory: Path, keep_last_epochs: int = 0) -> None:
        self.directory = directory
        self.keep_last_epochs = keep_last_epochs

    def save(self, payload: dict[str, Any], *, epoch_end: bool, is_best: bool) -> None:
        """``latest.pt`` always; ``best.pt`` and ``epoch-<n>.pt`` (last k kept) at epoch ends."""
        self.directory.mkdir(parents=True, exist_ok=True)
        meta = {
            "epoch": payload.get("epoch"),
            "global_step": payload.get("state", {}).get("global_step"),
            "mid_epoch": payload.get("position") is not None,
        }
        needed = _estimated_size(payload)
        self._check_free_space(needed, LATEST)
        checksum = self._replace(LATEST, meta, lambda handle: torch.save(payload, handle), needed)
        if not epoch_end:
            return
        if is_best:
            self._replace_with_copy_of(LATEST, BEST, checksum, meta)
        if self.keep_last_epochs > 0:
            self._replace_with_copy_of(LATEST, f"epoch-{payload['epoch']}.pt", checksum, meta)
            self._prune_epoch_files()

    # ---- reading ---------------------------------------------------------------------------

    def verify(self, path: Path) -> None:
        """Raise :class:`CheckpointError` if ``path`` does not match its manifest entry."""
        entry = _read_manifest(path.parent).get("files", {}).get(path.name)
        if entry is None:
            return  # not written by us (or the manifest is gone): loading it is the only check
        actual = _checksum_of(path)
        if actual not in [tuple(c) for c in entry["accepted"]]:
            expected = entry["accepted"][0]
            raise CheckpointError(
                f"checkpoint {path} is corrupt or truncated: it has {actual[1]} bytes with CRC-32 {actual[0]}, "
                f"the manifest recorded {expected[1]} bytes with CRC-32 {expected[0]}"
            )

    def newest_first(self) -> list[Path]:
        """The checkpoint files of this directory, the most advanced (global step) first."""
        files = _read_manifest(self.directory).get("files", {})
        paths = [p for p in self.directory.glob("*.pt") if p.is_file()]

        def progress(path: Path) -> tuple[int, int, float]:
            meta = files.get(path.name, {})
            step = meta.get("global_step")
            return (1 if step is not None else 0, step if step is not None else -1, path.stat().st_mtime)

        return sorted(paths, key=progress, reverse=True)

    def manifest_entries(self) -> dict[str, dict[str, Any]]:
        """What ``manifest.json`` records of each file: ``accepted`` checksums (CRC-32, size), ``epoch``,
        ``global_step``, ``mid_epoch``, ``written``; empty without a readable manifest."""
        files = _read_manifest(self.directory).get("files", {})
        return files if isinstance(files, dict) else {}

    def progress_of(self, path: Path) -> tuple[int, int] | None:
        """``(epoch, global_step)`` of a checkpoint as the manifest recorded it (None: not recorded)."""
        meta = _read_manifest(self.directory).get("files", {}).get(path.name, {})
        if meta.get("epoch") is None or meta.get("global_step") is None:
            return None
        return int(meta["epoch"]), int(meta["global_step"])

    # ---- writing ---------------------------------------------------------------------------

    def _replace(self, name: str, meta: dict[str, Any], write: Callable[[BinaryIO], None], needed: int) -> tuple[int, int]:
        target = self.directory / name
        temporary = self.directory / f".{name}.{os.getpid()}.tmp"
        try:
            with open(temporary, "wb") as raw:
                handle = _ChecksumWriter(raw)
                write(handle)  # type: ignore[arg-type]
                raw.flush()
                os.fsync(raw.fileno())
            checksum = (handle.crc, handle.size)
            self._record(name, checksum, meta, keep_previous=True)
            os.replace(temporary, target)
            _fsync_directory(self.directory)
            self._record(name, checksum, meta, keep_previous=False)
            return checksum
        except Exception as error:
            temporary.unlink(missing_ok=True)
            # torch.save reports a failed write as a RuntimeError from its zip writer; the OSError is its context.
            cause = _os_error_in(error)
            if cause is not None and cause.errno in _SPACE_ERRORS:
                self._raise_no_space(name, cause, needed=needed)
            raise CheckpointError(f"could not write the checkpoint {target}: {cause or error}") from error
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise

    def _replace_with_copy_of(self, source: str, name: str, checksum: tuple[int, int], meta: dict[str, Any]) -> None:
        """``name`` becomes a copy of ``source``: a hard link where possible (no extra disk), never a symlink."""
        temporary = self.directory / f".{name}.{os.getpid()}.tmp"
        temporary.unlink(missing_ok=True)
        try:
            try:
                os.link(self.directory / source, temporary)
            except OSError:  # file systems without hard links
                shutil.copyfile(self.directory / source, temporary)
                with open(temporary, "rb+") as handle:
                    os.fsync(handle.fileno())
            self._record(name, checksum, meta, keep_previous=True)
            os.replace(temporary, self.directory / name)
            _fsync_directory(self.directory)
            self._record(name, checksum, meta, keep_previous=False)
        except OSError as error:
            temporary.unlink(missing_ok=True)
            if error.errno in _SPACE_ERRORS:
                self._raise_no_space(name, error)
            raise CheckpointError(f"could not write the checkpoint {self.directory / name}: {error}") from error

    def _prune_epoch_files(self) -> None:
        epochs = sorted(
            (int(m.group(1)), p) for p in self.directory.iterdir() if (m := _EPOCH_FILE.match(p.name))
        )
        for _, path in epochs[: max(0, len(epochs) - self.keep_last_epochs)]:
            path.unlink(missing_ok=True)  # only after its successor is complete
            self._forget(path.name)

    def _record(self, name: str, checksum: tuple[int, int], meta: dict[str, Any], keep_previous: bool) -> None:
        manifest = _read_manifest(self.directory)
        files = manifest.setdefault("files", {})
        previous = files.get(name, {}).get("accepted", [])[:1] if keep_previous else []
        files[name] = {
            "accepted": [list(checksum), *previous],
            **meta,
            "written": dt.datetime.now().isoformat(timespec="seconds"),
        }
        self._write_manifest(manifest)

    def _forget(self, name: str) -> None:
        manifest = _read_manifest(self.directory)
        if manifest.get("files", {}).pop(name, None) is not None:
            self._write_manifest(manifest)

    def _write_manifest(self, manifest: dict[str, Any]) -> None:
        manifest["format"] = "blowtorch-checkpoint-manifest"
        temporary = self.directory / f".{MANIFEST}.{os.getpid()}.tmp"
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(manifest, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.directory / MANIFEST)
        _fsync_directory(self.directory)

    def _check_free_space(self, needed: int, name: str) -> None:
        free = shutil.disk_usage(self.directory).free
        if free < needed:
            self._raise_no_space(name, None, needed=needed, free=free)

    def _raise_no_space(self, name: str, error: OSError | None, needed: int | None = None, free: int | None = None) -> None:
        free = shutil.disk_usage(self.directory).free if free is None else free
        needed_text = f"about {size_text(needed)}" if needed is not None else "more than the free space"
        raise CheckpointError(
            f"not enough disk space to write {self.directory / name}: it needs {needed_text}, {size_text(free)} are free "
            f"on that file system. The previous checkpoints are intact. Free some space, or pass save_path= on a "
            f"larger disk and resume from this run directory"
        ) from error


class _ChecksumWriter:
    """A write-only file wrapper that computes CRC-32 and size while torch.save streams through it."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self.crc = 0
        self.size = 0

    def write(self, data: bytes) -> int:
        self.crc = zlib.crc32(data, self.crc)
        self.size += len(data)
        return self._handle.write(data)

    def flush(self) -> None:
        self._handle.flush()


def _os_error_in(error: BaseException | None) -> OSError | None:
    """The first ``OSError`` in an exception's chain of causes and contexts."""
    while error is not None:
        if isinstance(error, OSError):
            return error
        error = error.__cause__ or error.__context__
    return None


def _checksum_of(path: Path) -> tuple[int, int]:
    crc, size = 0, 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            crc = zlib.crc32(chunk, crc)
            size += len(chunk)
    return crc, size


def _read_manifest(directory: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def _estimated_size(payload: Any) -> int:
    """Bytes ``torch.save(payload)`` will need: the tensors' storages plus room for the rest."""
    seen: set[int] = set()
    total = 0

    def visit(value: Any) -> None:
        nonlocal total
        if isinstance(value, torch.Tensor):
            storage = value.untyped_storage()
            if storage.data_ptr() not in seen:
                seen.add(storage.data_ptr())
                total += storage.nbytes()
        elif isinstance(value, dict):
            for item in value.values():
                visit(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                visit(item)

    visit(payload)
    return total + total // 100 + (64 << 10)  # zip records, pickled structure


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def size_text(count: int | None) -> str:
    """A byte count for people: ``17309`` -> ``16.9 KiB``."""
    value = float(count or 0)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
