"""The sources, dependencies and git state sacred records with a run: gathered once, git asked once per repository.

sacred asks git about every source file it finds, through GitPython (three git processes per file).
Within one gather the answer is the same for every file of a repository, so blowtorch asks git
itself once per repository (:mod:`blowtorch.sacred_bridge.git_state`, without importing GitPython)
and hands every file of it that answer: the run records exactly what sacred would have recorded.
Building sacred's ``Experiment`` gathers nothing (:func:`new_experiment`): the user's script is
gathered once, when the run starts, so that modules imported after ``Run()`` count too.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import sacred.dependencies
from sacred import SETTINGS, Experiment
from sacred.dependencies import gather_sources_and_dependencies

from blowtorch.sacred_bridge.git_state import GitAnswer, read_git_state, working_tree_of
from blowtorch.user_warnings import warn

_BLOWTORCH_DIR = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))


def new_experiment(**options: Any) -> Experiment:
    """sacred's ``Experiment(**options)``, built without its two costs that record nothing.

    ``Experiment()`` finds its caller with ``inspect.stack()``, which reads the source of every frame
    up the stack and looks each one up among all imported modules (thousands once torch is
    imported): about 30 ms under a training script. In a thread of its own the stack is a few frames
    deep, and the caller sacred finds is the same: the function below, in this module. sacred also
    gathers that caller's sources and dependencies, which the run never records (the user's script
    is gathered when the run starts, :func:`gather_sources`), so discovery is off meanwhile."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="blowtorch-sacred") as pool:
        return pool.submit(_experiment_gathering_nothing, options).result()


def _experiment_gathering_nothing(options: dict[str, Any]) -> Experiment:
    discovery = {key: SETTINGS[key] for key in ("DISCOVER_SOURCES", "DISCOVER_DEPENDENCIES")}
    SETTINGS.update(dict.fromkeys(discovery, "none"))
    try:
        return Experiment(**options)
    finally:
        SETTINGS.update(discovery)  # the user's own settings, for the gather at the run's start


def gather_sources(
    caller_globals: dict[str, Any], save_git_info: bool, base_dir: str
) -> tuple[Any, set[Any], set[Any], bool]:
    """sacred's main file, sources and dependencies of the user's script, and whether git information
    could be read (a repository without commits cannot: the run is then recorded without it, with a warning)."""
    try:
        with _git_asked_once_per_repository():
            found = gather_sources_and_dependencies(caller_globals, save_git_info, base_dir)
    except ValueError as error:  # e.g. a git repository without commits yet
        if not save_git_info:
            raise
        warn(
            f"sacred could not read the git state of {base_dir} ({error}); recording the run without "
            f"git information. Pass Run(save_git_info=False) to skip this check",
            RuntimeWarning,
        )
        save_git_info = False
        found = gather_sources_and_dependencies(caller_globals, False, base_dir)
    mainfile, sources, dependencies = found
    # blowtorch is a dependency, never a source, even when the user's script sits next to it.
    sources = {s for s in sources if not s.filename.startswith(_BLOWTORCH_DIR + os.sep)}
    return mainfile, sources, dependencies, save_git_info


@contextlib.contextmanager
def _git_asked_once_per_repository() -> Iterator[None]:
    """While sacred gathers, its ``get_commit_if_possible`` answers from git, once per repository."""
    sacred_asks = sacred.dependencies.get_commit_if_possible
    answers: dict[str, GitAnswer] = {}

    def once_per_repository(filename: str, save_git_info: bool) -> GitAnswer | tuple[None, None, None]:
        working_tree = working_tree_of(os.path.dirname(filename)) if save_git_info else None
        if working_tree is None:  # git information off, or a file outside any repository: nothing recorded
            return None, None, None
        if working_tree not in answers:
            answers[working_tree] = read_git_state(working_tree)
        return answers[working_tree]

    sacred.dependencies.get_commit_if_possible = once_per_repository
    try:
        yield
    finally:
        sacred.dependencies.get_commit_if_possible = sacred_asks
