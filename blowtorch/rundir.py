"""The run directory: its name, and the small files in it.

``<save_path>/<timestamp>-<name>-<N>/`` holds ``config.yaml``, ``log.txt``, ``model-summary.txt``,
``source.txt`` and ``checkpoints/``.

The number N: one sequence per ``save_path``, shared by the run directories and by blowtorch's
default sacred file storage ``<save_path>/sacred/<N>``.

- A run that the default storage records gets the number of its directory there, so
  ``...-7/`` is ``sacred/7``. That is the sacred run id when the storage assigned it; when another
  observer assigned the id first (``-F``, MongoDB, a custom one), the storage uses that id if the
  number is free under ``save_path``, else the next free number, and the run keeps its id (which
  checkpoints, ``log.txt`` and the run's info record as ``sacred_run_id``).
- A run the storage does not record (``-u``) takes the next number free in both places, so no
  later recorded run gets it.

A resumed run is a new sacred run that continues in its first run's directory, whose number stays.
So no two run directories under one ``save_path`` share a number. A number is taken by making a
directory, which is atomic, and then checking that no other directory holds it (see
:func:`claim_number`), so runs started at the same moment never get the same number either.

``run_name`` is restricted to :data:`RUN_NAME_CHARACTERS`, safe in a directory name everywhere.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import tempfile
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from blowtorch.errors import OptionError

TIMESTAMP_FORMAT = "%Y-%m-%d_%H-%M-%S"
_RUN_DIR_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}-(.+)-(\d+)$")
CHECKPOINTS = "checkpoints"
SACRED_DIR = "sacred"
#: What a run name may contain: ASCII letters, digits and ``- _ . + = @ ,``. Each is allowed in a file
#: name on Linux, macOS and Windows and needs no quoting in a shell; ``lr=0.1,bs=32`` is a run name.
RUN_NAME_CHARACTERS = "ASCII letters, digits and - _ . + = @ ,"
_UNSAFE = re.compile(r"[^A-Za-z0-9\-_.+=@,]+")
#: Directory names are at most 255 bytes on common file systems; the timestamp and number need the rest.
MAX_RUN_NAME_LENGTH = 200


class RunDirectory:
    """One run's directory and the files blowtorch writes into it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def log_file(self) -> Path:
        return self.path / "log.txt"

    @classmethod
    def create(cls, save_path: Path, name: str, number: int | None, now: dt.datetime | None = None) -> RunDirectory:
        """Create a new run directory with a number no other run directory under ``save_path`` has.

        ``number`` is the run's directory number in the default sacred storage, which already holds
        it; None for a run that storage does not record.
        """
        check_run_name(name)
        save_path.mkdir(parents=True, exist_ok=True)
        prefix = f"{(now or dt.datetime.now()).strftime(TIMESTAMP_FORMAT)}-{name}-"

        def make(candidate: int) -> Path:
            path = save_path / f"{prefix}{candidate}"
            path.mkdir()
            return path

        if number is not None:
            # Claimed by the storage's directory: no other run directory has it (see claim_number).
            return cls(make(number))
        return cls(claim_number(save_path, make)[1])

    def write_text(self, filename: str, text: str) -> Path:
        target = self.path / filename
        target.write_text(text, encoding="utf-8")
        return target

    def write_config(self, config: Mapping[str, Any]) -> Path:
        """``config.yaml``: the resolved config, loadable with ``yaml.safe_load`` and usable as a config file."""
        import yaml  # here, not at the top: `import blowtorch` stays fast

        text = yaml.safe_dump(plain_config(config), sort_keys=False, allow_unicode=True, default_flow_style=False)
        return self.write_text("config.yaml", text)

    def append_log(self, line: str) -> None:
        # Opened per line so that every line is on disk even if the process dies right after.
        with open(self.log_file, "a", encoding="utf-8") as handle:
            handle.write(line.rstrip("\n") + "\n")


def run_name_of(directory_name: str) -> str | None:
    """The run name in a run directory's name ``<timestamp>-<name>-<N>``; None if it is not one."""
    match = _RUN_DIR_PATTERN.match(directory_name)
    return match.group(1) if match else None


def plain_config(value: Any) -> Any:
    """``value`` as plain YAML-safe types (sacred's read-only dicts/lists, tuples and numpy scalars)."""
    if isinstance(value, Mapping):
        return {str(key): plain_config(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_config(item) for item in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return plain_config(value.item())
    return str(value)


def check_run_name(name: Any) -> None:
    """Raise :class:`OptionError` for a run name that cannot be part of a run directory's name everywhere.

    Only characters matter: the name sits between the timestamp and the number, so Windows'
    reserved names (``CON``, ``NUL``) and trailing dots or spaces never end a directory name.
    """
    if not isinstance(name, str) or not name:
        raise OptionError(f"run_name must be a non-empty string of {RUN_NAME_CHARACTERS}, got {name!r}")
    bad = sorted(set("".join(_UNSAFE.findall(name))))
    if bad:
        suggestion = safe_run_name(name)
        raise OptionError(
            f"run_name {name!r} contains {' '.join(repr(c) for c in bad)}; it becomes part of a directory name, "
            f"so use only {RUN_NAME_CHARACTERS}" + (f" (e.g. run_name={suggestion!r})" if suggestion else "")
        )
    if len(name) > MAX_RUN_NAME_LENGTH:
        raise OptionError(
            f"run_name is {len(name)} characters long; it becomes part of a directory name, so use at most "
            f"{MAX_RUN_NAME_LENGTH}, e.g. run_name={name[:MAX_RUN_NAME_LENGTH]!r}"
        )


def safe_run_name(name: str) -> str:
    """``name`` with every run of characters outside :data:`RUN_NAME_CHARACTERS` replaced by ``_``
    (``"my run/1"`` -> ``"my_run_1"``); empty if nothing usable is left."""
    safe = _UNSAFE.sub("_", name)[:MAX_RUN_NAME_LENGTH]
    return "" if not safe.strip("_") else safe


def run_name_from_cli(cli_name: str) -> str:
    """sacred's ``-n NAME`` as the run name, made safe with a warning that shows the result.

    Not rejected like an unsafe ``run_name``: ``-n`` names the sacred run, where any text is valid
    (and is recorded as given); only the directory needs a safe form.
    """
    safe = safe_run_name(cli_name)
    if safe != cli_name:
        instead = f"named {safe!r}" if safe else "given a random name"
        warnings.warn(
            f"-n {cli_name!r} cannot be part of a directory name as it is (allowed: {RUN_NAME_CHARACTERS}); "
            f"the run directory is {instead} instead, and the sacred run keeps the name as given. "
            f"Pass run(..., run_name=...) to choose the directory's name",
            UserWarning,
            stacklevel=2,
        )
    return safe


def claim_number(save_path: Path, make: Callable[[int], Path], first: int | None = None) -> tuple[int, Path]:
    """Make ``make(N)`` for the first number N, from ``first`` on (default: the next free one), that no
    other run directory and no sacred storage directory under ``save_path`` holds; return N and the path.

    Making a directory claims its name atomically, but a number appears in two kinds of names
    (``<timestamp>-<name>-N`` and ``sacred/N``). So a claimant makes its directory, then looks for
    another holder of the number and, if there is one, removes its own and moves on: of two runs
    claiming a number at the same moment, the one that looks second sees the other.
    """
    number = first if first is not None else next_free_number(save_path)
    for _ in range(10_000):
        try:
            path = make(number)
        except FileExistsError:
            pass  # another run took this name
        else:
            if not _held_elsewhere(save_path, number, path):
                return number, path
            path.rmdir()
        number = max(number + 1, next_free_number(save_path))
    raise OptionError(f"could not find a free run number in {save_path}: every candidate is taken")


def next_free_number(save_path: Path) -> int:
    """One more than the highest number of a run directory or a sacred storage directory under ``save_path``."""
    return max(_run_numbers(save_path) + _storage_numbers(save_path), default=0) + 1


def _held_elsewhere(save_path: Path, number: int, own: Path) -> bool:
    storage = save_path / SACRED_DIR / str(number)
    return (storage != own and storage.exists()) or any(
        int(m.group(2)) == number for entry in _listdir(save_path) if entry != own.name and (m := _RUN_DIR_PATTERN.match(entry))
    )


def _run_numbers(save_path: Path) -> list[int]:
    return [int(m.group(2)) for entry in _listdir(save_path) if (m := _RUN_DIR_PATTERN.match(entry))]


def _storage_numbers(save_path: Path) -> list[int]:
    return [int(entry) for entry in _listdir(save_path / SACRED_DIR) if entry.isdigit()]


def _listdir(directory: Path) -> list[str]:
    try:
        return os.listdir(directory)
    except FileNotFoundError:
        return []


def check_save_path(save_path: Any) -> Path:
    """Make sure run directories can be created in ``save_path``, or say why not; leaves no trace."""
    if not isinstance(save_path, (str, os.PathLike)) or not str(save_path).strip():
        raise OptionError(f"save_path must be a directory path such as 'train_logs', got {save_path!r}")
    path = Path(save_path).expanduser().absolute()
    blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise OptionError(
            f"save_path '{path}' cannot hold run directories: '{blocker}' is a file, not a directory. "
            f"Pass another save_path, or move the file away"
        )
    missing = [p for p in (path, *path.parents) if not p.exists()]
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):  # the permission that matters: creating entries in it
            pass
    except OSError as error:
        raise OptionError(
            f"save_path '{path}' cannot hold run directories: {error.strerror or error} ({type(error).__name__}). "
            f"Pass a directory you can write to, e.g. save_path='train_logs'"
        ) from None
    finally:
        for directory in missing:  # the run creates them; a run that fails before that leaves nothing behind
            with contextlib.suppress(OSError):
                directory.rmdir()
    return path
