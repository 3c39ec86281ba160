"""Which run a ``RUN`` argument means: a run directory's path, its name, a unique prefix of its name
(or of its run name), or a sacred id in ``save_path``. An ambiguous or unknown one lists the candidates."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from blowtorch.cli import CommandError
from blowtorch.cli.records import Leg, RunHistory, SavePath, read_save_path
from blowtorch.errors import MissingFileError
from blowtorch.rundir import SACRED_DIR, run_name_of

#: How many candidates a message lists before "... and N more".
_SHOWN = 8


@dataclass(frozen=True)
class Selection:
    """A resolved ``RUN``: its run directory's history and, when ``RUN`` was a sacred id, that run of the chain."""

    history: RunHistory
    leg: Leg | None = None

    @property
    def legs(self) -> list[Leg]:
        return [self.leg] if self.leg is not None else self.history.legs


def add_save_path_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-s", "--save_path", "--save-path", dest="save_path", default="train_logs", metavar="SAVE_PATH",
        help="where the run directories are (default: train_logs); not needed when RUN is a path",
    )  # fmt: skip


def open_save_path(path: Path) -> SavePath:
    """The runs of ``path``, or a :class:`CommandError` saying why there are none to read."""
    try:
        return read_save_path(path)
    except MissingFileError as error:
        raise CommandError(str(error)) from None


def resolve(spec: str, save_path: Path, cache: dict[Path, SavePath] | None = None) -> Selection:
    """The run ``spec`` names (see the module's docstring); ``cache`` shares one reading per save_path."""
    cache = {} if cache is None else cache

    def runs_of(path: Path) -> SavePath:
        key = path.absolute()
        if key not in cache:
            cache[key] = open_save_path(path)
        return cache[key]

    as_path = Path(spec).expanduser()
    if as_path.is_dir():
        return _by_path(as_path, runs_of)
    if as_path.exists():
        raise CommandError(f"{spec} is a file, not a run directory; pass a run directory (<save_path>/<timestamp>-<name>-<N>)")
    if os.sep in spec or (os.altsep and os.altsep in spec):
        raise CommandError(f"{spec} does not exist; pass a run directory, or a run's name with --save_path")
    return _by_name(spec, runs_of(save_path))


def _by_path(path: Path, runs_of: Callable[[Path], SavePath]) -> Selection:
    if run_name_of(path.absolute().name) is not None:
        runs = runs_of(path.absolute().parent)
        history = next((h for h in runs.histories if h.name == path.absolute().name), None)
        assert history is not None  # the directory exists and has a run directory's name
        return Selection(history)
    if (path / SACRED_DIR).is_dir() or any(run_name_of(p.name) is not None for p in path.iterdir()):
        raise CommandError(
            f"{path} is a save_path, not a run directory; 'blowtorch runs {path}' lists its runs, and "
            f"'--save_path {path} RUN' picks one by name"
        )
    raise CommandError(
        f"{path} is not a run directory: blowtorch names run directories <timestamp>-<name>-<N> "
        f"(e.g. train_logs/2026-11-25_14-03-09-brave-eagle-3); pass one of those, or a run's name with --save_path"
    )


def _by_name(spec: str, runs: SavePath) -> Selection:
    histories = runs.histories
    exact = [h for h in histories if h.name == spec]
    if exact:
        return Selection(exact[0])
    if spec.isdecimal():
        for history in histories:
            leg = history.find(str(int(spec)))
            if leg is not None:
                return Selection(history, leg if len(history.legs) > 1 else None)
    for matches in (
        [h for h in histories if h.run_name == spec],
        [h for h in histories if h.name.startswith(spec) or h.run_name.startswith(spec)],
    ):
        if len(matches) == 1:
            return Selection(matches[0])
        if matches:
            raise CommandError(
                f"run {spec!r} is ambiguous in {runs.path}: it matches {_listing(matches)}; give more of the name, "
                f"the whole directory name, or a sacred id"
            )
    there = f"its runs (newest first): {_listing(histories)}" if histories else "it holds no run directories"
    raise CommandError(f"no run {spec!r} in {runs.path}; {there}")


def _listing(histories: list[RunHistory]) -> str:
    names = [h.name for h in histories[:_SHOWN]]
    more = len(histories) - _SHOWN
    return ", ".join(names) + (f" and {more} more" if more > 0 else "")
