"""blowtorch asks git for the state sacred records (url, commit, dirty) without GitPython: the answer
must be the one sacred's own ``get_commit_if_possible`` (GitPython) gives, in every state a repository can be in."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sacred.dependencies import get_commit_if_possible

from blowtorch.sacred_bridge.git_state import read_git_state, working_tree_of
from tests.integration.git_repositories import git, repository

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git executable")


def blowtorch_answer(filename: Path) -> tuple[object, object, object]:
    working_tree = working_tree_of(str(filename.parent))
    return (None, None, None) if working_tree is None else read_git_state(working_tree)


def assert_same_as_sacred(filename: Path) -> tuple[object, object, object]:
    expected = get_commit_if_possible(str(filename), True)
    assert blowtorch_answer(filename) == expected
    return expected


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path.resolve() / "project"
    root.mkdir()
    repository(root, {"train.py": "print('train')\n", "pkg/helpers.py": "LR = 0.1\n", "notes.txt": "a\n"})
    return root


def test_a_clean_repository_without_a_remote(repo):
    url, commit, dirty = assert_same_as_sacred(repo / "pkg" / "helpers.py")  # found from a subdirectory
    assert (url, commit, dirty) == (f"git:/{repo}", git(repo, "rev-parse", "HEAD"), False)


def test_the_remote_origin_is_the_url(repo):
    git(repo, "remote", "add", "upstream", "https://example.com/upstream.git")
    git(repo, "remote", "add", "origin", "git@example.com:me/project.git")
    assert assert_same_as_sacred(repo / "train.py")[0] == "git@example.com:me/project.git"


@pytest.mark.parametrize(
    "change, dirty",
    [
        (lambda repo: (repo / "notes.txt").write_text("b\n"), True),  # a tracked file changed, not staged
        (lambda repo: ((repo / "notes.txt").write_text("b\n"), git(repo, "add", "notes.txt")), True),  # staged
        (lambda repo: git(repo, "rm", "-q", "--cached", "notes.txt"), True),  # staged removal
        (lambda repo: (repo / "new.py").write_text("x = 1\n"), False),  # untracked files do not count
        (lambda repo: (repo / "train.py").touch(), False),  # a touched file that did not change
    ],
    ids=["modified", "staged", "removed-from-index", "untracked", "touched"],
)
def test_dirty_means_a_tracked_file_changed_staged_or_not(repo, change, dirty):
    change(repo)
    assert assert_same_as_sacred(repo / "train.py")[2] is dirty


def test_a_detached_head_and_a_later_commit(repo):
    first = git(repo, "rev-parse", "HEAD")
    (repo / "notes.txt").write_text("b\n")
    git(repo, "commit", "-q", "-am", "second")
    assert assert_same_as_sacred(repo / "train.py")[1] == git(repo, "rev-parse", "HEAD") != first
    git(repo, "checkout", "-q", first)
    assert assert_same_as_sacred(repo / "train.py")[1] == first


def test_a_linked_worktree_is_its_own_working_tree(repo, tmp_path):
    git(repo, "worktree", "add", "-q", "--detach", str(tmp_path / "other"))
    other = tmp_path.resolve() / "other"
    (other / "notes.txt").write_text("changed in the other worktree\n")
    assert assert_same_as_sacred(other / "train.py") == (f"git:/{other}", git(repo, "rev-parse", "HEAD"), True)
    assert assert_same_as_sacred(repo / "train.py")[2] is False  # the main worktree is still clean


def test_outside_any_repository_nothing_is_recorded(tmp_path):
    if working_tree_of(str(tmp_path)) is not None:
        pytest.skip(f"{tmp_path} is inside a git repository")
    assert blowtorch_answer(tmp_path / "train.py") == (None, None, None) == get_commit_if_possible(str(tmp_path / "train.py"), True)


def test_a_repository_without_commits_is_an_error_sacred_also_raises(tmp_path):
    git(tmp_path, "init", "-q")
    with pytest.raises(ValueError):
        get_commit_if_possible(str(tmp_path / "train.py"), True)  # GitPython: HEAD's reference does not exist
    with pytest.raises(ValueError, match=f"the repository at {tmp_path} has no commits yet"):
        read_git_state(str(tmp_path))


def test_a_missing_git_executable_is_an_error_naming_it(repo, monkeypatch):
    monkeypatch.setenv("GIT_PYTHON_GIT_EXECUTABLE", "/nonexistent/git")
    with pytest.raises(ValueError, match=r"cannot run git \(/nonexistent/git: No such file or directory\); install git"):
        read_git_state(str(repo))
