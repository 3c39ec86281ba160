"""The sources, dependencies and git state sacred records with a run: gathered once, git asked once per repository.

sacred asks git about every source file it finds (GitPython runs three git processes per file:
two ``git diff`` for the dirty state, one for the commit). Within one gather the answer is the
same for every file of a repository, so blowtorch lets sacred ask once per repository and hands
the other files that answer: the run records exactly what sacred would have recorded.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import sacred.dependencies
from sacred.dependencies import gather_sources_and_dependencies

from blowtorch.user_warnings import warn

_BLOWTORCH_DIR = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))

GitAnswer = tuple[Any, Any, Any]  # sacred's (repository url, commit, dirty)


def preload_git(save_git_info: bool) -> None:
    """Import GitPython (it runs ``git version`` on import) when the ``Run`` is made, so that the start
    of training does not wait for it; a missing git is reported by sacred where it always was."""
    if save_git_info:
        with contextlib.suppress(ImportError):
            import git  # noqa: F401


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
    """While sacred gathers: one answer of ``get_commit_if_possible`` per repository, reused for its other files."""
    ask = sacred.dependencies.get_commit_if_possible
    answers: dict[tuple[str, str], GitAnswer] = {}

    def once_per_repository(filename: str, save_git_info: bool) -> GitAnswer:
        repository = _repository_of(filename) if save_git_info else None
        if repository is None:  # not in a repository, or no git: sacred's own function answers as always
            return ask(filename, save_git_info)  # type: ignore[no-any-return]
        if repository not in answers:
            answers[repository] = ask(filename, save_git_info)
        return answers[repository]

    sacred.dependencies.get_commit_if_possible = once_per_repository
    try:
        yield
    finally:
        sacred.dependencies.get_commit_if_possible = ask


def _repository_of(filename: str) -> tuple[str, str] | None:
    """The repository sacred's ``get_commit_if_possible`` finds for ``filename``, found the same way
    (GitPython's ``Repo`` on the file's directory, searching upwards; no git process is started)."""
    try:
        from git import Repo

        repository = Repo(os.path.dirname(filename), search_parent_directories=True)
    except Exception:  # not a repository, no GitPython, no git: sacred's function deals with it
        return None
    return str(repository.git_dir), str(repository.working_dir)
