"""The ``checkpoints/`` directory: atomic writes, a manifest of checksums, retention, and finding
the newest checkpoint that is intact.

A save event writes ``latest.pt`` and, at an epoch's end, ``best.pt`` and ``epoch-<n>.pt`` with the
same content, in two parts:

1. :meth:`CheckpointStore.write` serialises the payload into a temp file in the same directory,
   with no fsync: the only part that reads the tensors, which training changes at its next step.
   torch's own CRC-32 of each zip record is turned off for it: ``torch.load`` never checks it (a
   flipped byte loads silently), and computing it costs the training thread about a quarter of
   ``torch.save``'s time. The manifest's checksum below is the one that is checked. (A zip tool's
   ``testzip`` reports those records as bad; ``torch.load`` reads them.)
2. :meth:`PendingSave.finish` touches files only, so it may run in another thread while training
   goes on: the file's fsync and, while the disk works, its CRC-32 read back from the page cache;
   then hard links for the other names (copies where the file system has none), one
   ``manifest.json`` write, ``os.replace`` of each name, an fsync of the directory, and the removal
   of ``epoch-<n>.pt`` files past ``keep_last_epochs``.

A crash leaves the old file or the new one, never a mix, and never removes an old file before its
replacement is in place. ``manifest.json`` records each file's CRC-32 and size so that a truncated
or corrupt file (a full disk, a bad copy) is detected by name before anyone loads it. The manifest
is in place and on disk (fsync of the directory) before any name is replaced, and it accepts a
replaced name's previous checksum as well as its new one, so no crash window can make an intact
file look corrupt: 4 fsyncs and one manifest write per save event.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import os
import re
import shutil
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from blowtorch.errors import CheckpointError

BEST = "best.pt"
LATEST = "latest.pt"
MANIFEST = "manifest.json"
_EPOCH_FILE = re.compile(r"^epoch-(\d+)\.pt$")
_TEMPORARY = re.compile(r"^\..+\.\d+\.tmp$")  # ".<name>.<pid>.tmp"
_SPACE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_CHUNK = 1 << 20
_OVERLAP_FROM = 4 << 20  # bytes: see _checksum_and_fsync


class CheckpointStore:
    """Writes and finds the checkpoints of one run directory."""

    def __init__(self, directory: Path, keep_last_epochs: int = 0) -> None:
        self.directory = directory
        self.keep_last_epochs = keep_last_epochs

    def save(self, payload: dict[str, Any], *, epoch_end: bool, is_best: bool) -> None:
        """``latest.pt`` always; ``best.pt`` and ``epoch-<n>.pt`` (last k kept) at epoch ends. Returns
        when the files are on disk and in place."""
        self.write(payload, epoch_end=epoch_end, is_best=is_best).finish()

    def write(self, payload: dict[str, Any], *, epoch_end: bool, is_best: bool) -> PendingSave:
        """Part 1 of :meth:`save`: the payload serialised into a temp file. Nothing is replaced until
        the returned :meth:`PendingSave.finish`; if it never runs (a crash), the old files stay."""
        self.directory.mkdir(parents=True, exist_ok=True)
        names = [LATEST]
        if epoch_end and is_best:
            names.append(BEST)
        if epoch_end and self.keep_last_epochs > 0:
            names.append(f"epoch-{payload['epoch']}.pt")
        meta = {
            "epoch": payload.get("epoch"),
            "global_step": payload.get("state", {}).get("global_step"),
            "mid_epoch": payload.get("position") is not None,
        }
        pending = PendingSave(self, names, meta, needed=_estimated_size(payload))
        self._check_free_space(pending.needed, LATEST)
        import torch  # here, not at the top: the `blowtorch` command reads manifests without torch

        try:
            pending.handle = open(pending.temporary(LATEST), "wb")  # noqa: SIM115 - closed by finish() or discard()
            with _without_torch_record_checksums():
                torch.save(payload, pending.handle)
            pending.handle.flush()
        except BaseException as error:
            pending.discard()
            if isinstance(error, Exception):
                pending.raise_write_error(error)
            raise
        return pending

    def remove_stale_temporaries(self) -> None:
        """Temp files left by a process that was killed while it wrote (only call it while holding the run directory)."""
        if self.directory.is_dir():
            for path in self.directory.iterdir():
                if _TEMPORARY.match(path.name):
                    path.unlink(missing_ok=True)

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

    def _epoch_files_to_prune(self, new_names: list[str]) -> list[str]:
        """The ``epoch-<n>.pt`` files past ``keep_last_epochs`` once ``new_names`` are in place."""
        if not any(_EPOCH_FILE.match(name) for name in new_names):
            return []
        names = {p.name for p in self.directory.iterdir()} | set(new_names)
        epochs = sorted((int(m.group(1)), name) for name in names if (m := _EPOCH_FILE.match(name)))
        return [name for _, name in epochs[: max(0, len(epochs) - self.keep_last_epochs)]]

    def _write_manifest(self, manifest: dict[str, Any]) -> None:
        manifest["format"] = "blowtorch-checkpoint-manifest"
        temporary = self.directory / f".{MANIFEST}.{os.getpid()}.tmp"  # as PendingSave.temporary(MANIFEST)
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


@dataclass(eq=False)
class PendingSave:
    """A checkpoint serialised into a temp file, not yet on disk or in place (see the module's docstring)."""

    store: CheckpointStore
    names: list[str]  # latest.pt first, then the names that get the same content
    meta: dict[str, Any]
    needed: int
    handle: BinaryIO | None = field(default=None, repr=False)

    def temporary(self, name: str) -> Path:
        return self.store.directory / f".{name}.{os.getpid()}.tmp"

    def finish(self) -> None:
        """Part 2 of :meth:`CheckpointStore.save`: checksum, fsync, manifest, ``os.replace``, retention."""
        directory, source = self.store.directory, self.temporary(LATEST)
        try:
            assert self.handle is not None, "finish() once, after write()"
            checksum = _checksum_and_fsync(source, self.handle)
            self.handle.close()
            self.handle = None
            for name in self.names[1:]:
                _link_or_copy(source, self.temporary(name))
            pruned = self.store._epoch_files_to_prune(self.names)
            self._record(checksum, forget=pruned)  # on disk before any name changes: it accepts old and new
            for name in self.names:
                os.replace(self.temporary(name), directory / name)
            _fsync_directory(directory)
            for name in pruned:
                (directory / name).unlink(missing_ok=True)  # only now that its successor is in place
        except BaseException as error:
            self.discard()
            if isinstance(error, Exception):
                self.raise_write_error(error)
            raise

    def discard(self) -> None:
        """Remove the temp files; the checkpoint is not written."""
        if self.handle is not None:
            with contextlib.suppress(OSError):  # a full disk fails the flush again; the file goes anyway
                self.handle.close()
            self.handle = None
        for name in [*self.names, MANIFEST]:
            self.temporary(name).unlink(missing_ok=True)

    def raise_write_error(self, error: Exception) -> None:
        target = self.store.directory / LATEST
        # torch.save reports a failed write as a RuntimeError from its zip writer; the OSError is its context.
        cause = _os_error_in(error)
        if cause is not None and cause.errno in _SPACE_ERRORS:
            self.store._raise_no_space(LATEST, cause, needed=self.needed)
        raise CheckpointError(
            f"could not write the checkpoint {target} of epoch {self.meta['epoch']} (global step "
            f"{self.meta['global_step']}): {cause or error}. The checkpoints already in {self.store.directory} are intact"
        ) from error

    def _record(self, checksum: tuple[int, int], forget: list[str]) -> None:
        manifest = _read_manifest(self.store.directory)
        files = manifest.setdefault("files", {})
        written = dt.datetime.now().isoformat(timespec="seconds")
        for name in self.names:
            previous = files.get(name, {}).get("accepted", [])[:1]
            files[name] = {"accepted": [list(checksum), *previous], **self.meta, "written": written}
        for name in forget:
            files.pop(name, None)
        self.store._write_manifest(manifest)


def _link_or_copy(source: Path, target: Path) -> None:
    """``target`` gets ``source``'s content: a hard link (a plain file, no extra disk), else a copy."""
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError as error:
        if error.errno in _SPACE_ERRORS:
            raise
        shutil.copyfile(source, target)  # file systems without hard links
        with open(target, "rb+") as handle:
            os.fsync(handle.fileno())


def _os_error_in(error: BaseException | None) -> OSError | None:
    """The first ``OSError`` in an exception's chain of causes and contexts."""
    while error is not None:
        if isinstance(error, OSError):
            return error
        error = error.__cause__ or error.__context__
    return None


def _without_torch_record_checksums() -> contextlib.AbstractContextManager[Any]:
    """``torch.save`` without its per-record CRC-32 (see the module's docstring); a no-op on a torch
    that always computes it (before 2.6)."""
    try:
        from torch.utils.serialization import config
    except ImportError:
        return contextlib.nullcontext()
    if not hasattr(config.save, "compute_crc32"):
        return contextlib.nullcontext()
    patch: Callable[[dict[str, Any]], contextlib.AbstractContextManager[Any]] = config.patch  # type: ignore[attr-defined]  # made by torch's config module
    return patch({"save.compute_crc32": False})


def _checksum_and_fsync(path: Path, handle: BinaryIO) -> tuple[int, int]:
    """The file's CRC-32 and size, once it is on disk. Past a few MB the disk writes while the CPU
    checksums the page cache, so this takes about fsync's time; below, a thread costs more than it saves."""
    if handle.tell() < _OVERLAP_FROM:
        checksum = _checksum_of(path)
        os.fsync(handle.fileno())
        return checksum
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="blowtorch-fsync") as pool:
        synced = pool.submit(os.fsync, handle.fileno())
        checksum = _checksum_of(path)
        synced.result()
    return checksum


def _checksum_of(path: Path) -> tuple[int, int]:
    """CRC-32 and size of a file, read through one small buffer (no copy of the file in memory)."""
    crc, size = 0, 0
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        while count := handle.readinto(buffer):
            crc = zlib.crc32(view[:count], crc)
            size += count
    return crc, size


def _read_manifest(directory: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def _estimated_size(payload: Any) -> int:
    """Bytes ``torch.save(payload)`` will need: the tensors' storages plus room for the rest."""
    import torch

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
