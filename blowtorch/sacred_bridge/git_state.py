"""The git state sacred records for a source file, asked of git itself: one process per repository.

sacred 0.8.7 asks through GitPython (``sacred.dependencies.get_commit_if_possible``). Importing
GitPython alone costs about 60 ms of every run's start, and it then starts git for the answer
anyway. blowtorch asks git directly, with one ``git status`` (the commit and whether tracked files
changed) and one ``git config`` (the remote), and records exactly what sacred's function records:

- the url of the remote ``origin``, or ``git:/<working tree>`` when there is none;
- the commit ``HEAD`` points to;
- dirty: a tracked file changed, staged or not (untracked files do not count), as GitPython's
  ``Repo.is_dirty()``.

The git executable is the one GitPython would use: ``GIT_PYTHON_GIT_EXECUTABLE`` if set, else ``git``.
"""

from __future__ import annotations

import os
import subprocess

GitAnswer = tuple[str, str, bool]  # sacred's (repository url, commit, dirty)

_NO_COMMIT = "(initial)"  # git status's branch.oid in a repository without commits


def working_tree_of(directory: str) -> str | None:
    """The working tree holding ``directory``: the nearest directory upwards with a ``.git`` (a
    directory, or the file of a linked worktree or submodule), as GitPython searches. None outside one."""
    current = os.path.normpath(os.path.abspath(directory))
    while True:
        if os.path.exists(os.path.join(current, ".git")):
            return current
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


def read_git_state(working_tree: str) -> GitAnswer:
    """sacred's ``(url, commit, dirty)`` for the repository at ``working_tree``.

    Raises ValueError (what sacred raises, and blowtorch reports as a warning) when git cannot answer:
    no git executable, a repository without commits, or one git refuses to read."""
    status = _git(working_tree, "--no-optional-locks", "status", "--porcelain=v2", "--branch", "--untracked-files=no")
    lines = status.splitlines()
    commit = next((line.split()[2] for line in lines if line.startswith("# branch.oid ")), _NO_COMMIT)
    if commit == _NO_COMMIT:
        raise ValueError(f"the repository at {working_tree} has no commits yet")
    dirty = any(not line.startswith("#") for line in lines)
    url = _git(working_tree, "config", "--get", "remote.origin.url", missing_ok=True).strip()
    return url or f"git:/{working_tree}", commit, dirty


def _git(working_tree: str, *args: str, missing_ok: bool = False) -> str:
    executable = os.environ.get("GIT_PYTHON_GIT_EXECUTABLE") or "git"
    try:
        done = subprocess.run([executable, *args], cwd=working_tree, capture_output=True, text=True, check=False)
    except OSError as error:
        raise ValueError(
            f"cannot run git ({executable}: {error.strerror}); install git, or set GIT_PYTHON_GIT_EXECUTABLE to it"
        ) from None
    if done.returncode == 0:
        return done.stdout
    if missing_ok and done.returncode == 1 and not done.stderr:  # git config: the key is not set
        return ""
    raise ValueError(f"`git {' '.join(args)}` failed in {working_tree}: {done.stderr.strip() or f'exit {done.returncode}'}")
