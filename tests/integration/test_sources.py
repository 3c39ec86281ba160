"""What sacred records about the script's code: its sources, dependencies and git state, gathered once as the run starts.

Scripts live in real git repositories; the expected records are computed here from the files
and from git itself.
"""

from __future__ import annotations

import hashlib
import shutil
import stat
from pathlib import Path

import pytest
import torch

from tests.helpers import assert_ok, read_json, run_python, sacred_run_dirs, write_script
from tests.integration.git_repositories import git, repository

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git executable")

TRAIN = """\
    import torch
    from blowtorch import Run
    import net                      # next to the script

    run = Run(random_seed=1)

    from pkg import helpers         # a subdirectory of the same repository, imported after Run()
    from vendored import lib        # a repository of its own inside this one

    @run.train_step
    def step(batch, model):
        return (model(batch[0]) - batch[1]) ** 2

    @run.configure_optimizers
    def configure(model):
        return torch.optim.SGD(model.parameters(), lr=helpers.LR * lib.SCALE)

    run(net.make(), [(torch.randn(4, 2), torch.randn(4, 1))], max_epochs=1, progress=False)
"""

ALONE = """\
    import torch
    from blowtorch import Run

    run = Run(random_seed=1)
    run.train_step(lambda batch, model: (model(batch[0]) - batch[1]) ** 2)
    run.configure_optimizers(lambda model: torch.optim.SGD(model.parameters(), lr=0.1))
    run(torch.nn.Linear(2, 1), [(torch.randn(4, 2), torch.randn(4, 1))], max_epochs=1, progress=False)
"""


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def project(root: Path) -> tuple[str, str]:
    """The script's repository (with a remote, clean) and a repository inside it (no remote, dirty); their commits."""
    root.mkdir()
    write_script(root, TRAIN)
    outer = repository(
        root,
        {
            "train.py": (root / "train.py").read_text(),
            "net.py": "import torch\n\ndef make():\n    return torch.nn.Linear(2, 1)\n",
            "pkg/__init__.py": "",
            "pkg/helpers.py": "LR = 0.1\n",
        },
        remote="https://example.com/project.git",
    )
    inner = repository(root / "vendored", {"__init__.py": "", "lib.py": "SCALE = 1.0\n"})
    (root / "vendored" / "lib.py").write_text("SCALE = 0.5\n")  # a change not committed: that repository is dirty
    return outer, inner


def test_sources_dependencies_and_git_state_are_recorded_as_sacred_records_them(tmp_path):
    root = tmp_path.resolve() / "project"
    outer, inner = project(root)
    assert_ok(run_python(root / "train.py", cwd=root))

    [sacred_dir] = sacred_run_dirs(root / "train_logs" / "sacred")
    experiment = read_json(sacred_dir / "run.json")["experiment"]
    files = ["net.py", "pkg/__init__.py", "pkg/helpers.py", "train.py", "vendored/__init__.py", "vendored/lib.py"]
    assert experiment["mainfile"] == "train.py"
    # (file storage records each as its copy in _sources/, named with the file's MD5 digest)
    stored = [(name, f"_sources/{Path(name).stem}_{md5(root / name)}.py") for name in files]
    assert sorted(map(tuple, experiment["sources"])) == stored  # Run() was made before three of them were imported
    repositories = {(r["url"], r["commit"], r["dirty"]) for r in experiment["repositories"]}
    assert repositories == {("https://example.com/project.git", outer, False), (f"git:/{root / 'vendored'}", inner, True)}
    assert f"torch=={torch.__version__}" in experiment["dependencies"]
    for name, copy in stored:
        assert (root / "train_logs" / "sacred" / copy).read_bytes() == (root / name).read_bytes()


def git_calls(log: Path) -> list[str]:
    calls = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return calls


def test_git_is_asked_once_per_repository_however_many_sources_it_holds(tmp_path):
    root = tmp_path.resolve() / "project"
    project(root)
    write_script(root, ALONE, name="alone.py")
    log = tmp_path / "git-calls.txt"
    logging_git = tmp_path / "git"
    logging_git.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {shutil.which("git")} "$@"\n')
    logging_git.chmod(logging_git.stat().st_mode | stat.S_IEXEC)
    env = {"GIT_PYTHON_GIT_EXECUTABLE": str(logging_git)}

    def calls(script: str, *args: str) -> int:
        assert_ok(run_python(root / script, *args, cwd=root, env=env))
        return len(git_calls(log))

    alone = calls("alone.py")  # one source
    many = calls("train.py")  # six sources: four in the same repository as alone.py, two in another one
    assert alone > 0, "git was not asked at all: the test cannot tell anything"
    assert many == 2 * alone  # each of the two repositories asked once, as alone.py's was
    assert calls("train.py", "-u") == 0  # an unobserved run records no sources, so git is not asked


def test_a_repository_without_commits_is_recorded_without_git_information_and_a_warning(tmp_path):
    root = tmp_path.resolve() / "project"
    root.mkdir()
    write_script(root, ALONE)
    git(root, "init", "-q")
    result = run_python(root / "train.py", cwd=root, env={"PYTHONWARNINGS": "default"})
    assert_ok(result)
    assert "sacred could not read the git state" in result.stderr
    [sacred_dir] = sacred_run_dirs(root / "train_logs" / "sacred")
    experiment = read_json(sacred_dir / "run.json")["experiment"]
    assert experiment["repositories"] == []
    assert experiment["sources"] == [["train.py", f"_sources/train_{md5(root / 'train.py')}.py"]]


def test_a_run_records_its_git_state_without_importing_gitpython(tmp_path):
    root = tmp_path.resolve() / "project"
    project(root)
    write_script(root, ALONE + "    import sys\n    print('GitPython imported:', 'git' in sys.modules)\n", name="alone.py")
    result = run_python(root / "alone.py", cwd=root)
    assert_ok(result)
    assert "GitPython imported: False" in result.stdout  # its import alone costs about 60 ms of every start
    [sacred_dir] = sacred_run_dirs(root / "train_logs" / "sacred")
    [recorded] = read_json(sacred_dir / "run.json")["experiment"]["repositories"]
    assert recorded == {"url": "https://example.com/project.git", "commit": git(root, "rev-parse", "HEAD"), "dirty": False}


def test_sacreds_discovery_settings_of_the_user_decide_what_is_gathered(tmp_path):
    root = tmp_path.resolve() / "project"
    project(root)
    (root / "unused.py").write_text("VALUE = 1\n")  # never imported: only DISCOVER_SOURCES='dir' records it
    settings = "    from sacred import SETTINGS\n    SETTINGS.DISCOVER_SOURCES = 'dir'\n"
    check = "    print('after Run():', SETTINGS.DISCOVER_SOURCES)\n"
    body = ALONE.replace("    run = Run(random_seed=1)\n", settings + "    run = Run(random_seed=1)\n" + check)
    write_script(root, body, name="alone.py")
    result = run_python(root / "alone.py", cwd=root)
    assert_ok(result)
    assert "after Run(): dir" in result.stdout
    [sacred_dir] = sacred_run_dirs(root / "train_logs" / "sacred")
    recorded = [name for name, _ in read_json(sacred_dir / "run.json")["experiment"]["sources"]]
    assert "unused.py" in recorded and "alone.py" in recorded
