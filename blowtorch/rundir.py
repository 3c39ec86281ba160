"""The run directory: its name, and the small files in it.

``<save_path>/<timestamp>-<name>-<N>/`` holds ``config.yaml``, ``log.txt``, ``model-summary.txt``,
``source.txt`` and ``checkpoints/``. N is the sacred run id when an observer assigned a numeric
one, else the next free number in ``save_path``.
"""

from __future__ import annotations

import copy
import datetime as dt
import importlib
import os
import random
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from blowtorch.errors import OptionError

TIMESTAMP_FORMAT = "%Y-%m-%d_%H-%M-%S"
_RUN_DIR_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}-.+-(\d+)$")
CHECKPOINTS = "checkpoints"


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
    def create(cls, save_path: Path, name: str, run_id: Any, now: dt.datetime | None = None) -> RunDirectory:
        """Create a new, unique run directory; two runs never share one, even in the same second."""
        check_run_name(name)
        save_path.mkdir(parents=True, exist_ok=True)
        prefix = f"{(now or dt.datetime.now()).strftime(TIMESTAMP_FORMAT)}-{name}-"
        if _is_number(run_id):
            path = save_path / f"{prefix}{int(run_id)}"
            try:
                path.mkdir()
                return cls(path)
            except FileExistsError:
                pass  # the same id from another observer's database; fall back to a free number
        number = _highest_run_number(save_path) + 1
        for _ in range(10_000):
            path = save_path / f"{prefix}{number}"
            try:
                path.mkdir()
                return cls(path)
            except FileExistsError:
                number += 1  # another run took it at the same moment
        raise OptionError(f"could not create a run directory in {save_path}: all candidate names are taken")

    def write_text(self, filename: str, text: str) -> Path:
        target = self.path / filename
        target.write_text(text, encoding="utf-8")
        return target

    def write_config(self, config: Mapping[str, Any]) -> Path:
        """``config.yaml``: the resolved config, loadable with ``yaml.safe_load`` and usable as a config file."""
        text = yaml.safe_dump(plain_config(config), sort_keys=False, allow_unicode=True, default_flow_style=False)
        return self.write_text("config.yaml", text)

    def append_log(self, line: str) -> None:
        # Opened per line so that every line is on disk even if the process dies right after.
        with open(self.log_file, "a", encoding="utf-8") as handle:
            handle.write(line.rstrip("\n") + "\n")


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
    if not isinstance(name, str) or not name.strip() or name in (".", ".."):
        raise OptionError(f"run_name must be a non-empty string, got {name!r}")
    bad = [c for c in ("/", "\\", os.sep, "\0") if c in name]
    if bad:
        raise OptionError(f"run_name {name!r} contains {bad[0]!r}; it names one directory, so leave out path separators")


def generate_slug() -> str:
    """A readable random name such as ``brave-eagle``, drawn without touching the global ``random``.

    The run is seeded before this is called; using the seeded generator would give every run with
    the same seed the same name and shift its random stream.
    """
    state = random.getstate()  # importing coolname and setting up a generator draw from the global random
    try:
        import coolname

        config = copy.deepcopy(importlib.import_module("coolname.data").config)
        config["all"]["__nocheck"] = True
        generator = coolname.RandomGenerator(config, rand=random.Random(os.urandom(16)))
        return str(generator.generate_slug(2))
    finally:
        random.setstate(state)


def _is_number(run_id: Any) -> bool:
    return isinstance(run_id, int) and not isinstance(run_id, bool) or (isinstance(run_id, str) and run_id.isdigit())


def _highest_run_number(save_path: Path) -> int:
    numbers = [int(m.group(1)) for entry in os.listdir(save_path) if (m := _RUN_DIR_PATTERN.match(entry))]
    return max(numbers, default=0)


def check_save_path(save_path: Any) -> Path:
    """Create ``save_path`` if needed and make sure a run directory can be written in it, or say why not."""
    if not isinstance(save_path, (str, os.PathLike)) or not str(save_path).strip():
        raise OptionError(f"save_path must be a directory path such as 'train_logs', got {save_path!r}")
    path = Path(save_path).expanduser().absolute()
    blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise OptionError(
            f"save_path '{path}' cannot hold run directories: '{blocker}' is a file, not a directory. "
            f"Pass another save_path, or move the file away"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):  # the permission that matters: creating entries in it
            pass
    except OSError as error:
        raise OptionError(
            f"save_path '{path}' cannot hold run directories: {error.strerror or error} ({type(error).__name__}). "
            f"Pass a directory you can write to, e.g. save_path='train_logs'"
        ) from None
    return path
