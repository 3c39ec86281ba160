"""pytest fixtures (no tests) for the ``blowtorch`` command's tests: real runs in one save_path, and the command.

``cli_runs`` (session) trains, in two processes, one after the other (each run is tiny, so most of
the time is the processes' start): ``alpha`` and ``beta`` (completed, different configs), ``gamma``
(fails at step 5), ``delta`` (SIGTERM at step 6: interrupted; resumed to 4 epochs and interrupted at
step 13; resumed again with a comment of its own: a chain of three sacred runs), ``epsilon`` (``-u``:
no sacred record), ``eta`` (SIGKILL at step 1, before its first epoch: a half-written run) and
``zeta`` (SIGKILL at step 9, after two epochs). 4 steps per epoch, epoch 0 a baseline. Tests only
read it; a test that damages files works on a copy.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import REPO, run_python, write_script

__all__ = ["MAKE_RUNS", "blowtorch_command", "cli_runs"]

MAKE_RUNS = """
import os
import shlex
import signal
import sys
import time

import torch
from torch.utils.data import DataLoader, TensorDataset

from blowtorch import Run


def train(argv):
    run = Run(random_seed=1, save_git_info=False, argv=argv)

    @run.config
    def settings():
        max_epochs = 3
        lr = 0.05
        fail_at = -1  # raise at this global step: FAILED
        term_at = -1  # SIGTERM at this global step: INTERRUPTED
        kill_at = -1  # SIGKILL at this global step: the process is gone, the run still says RUNNING
        sleep = 0.0  # seconds per step, for a test that does something while the run trains

    @run.train_step
    @run.validate_step
    def step(batch, model, step, epoch, is_validate):
        if not is_validate:
            if step == run["fail_at"]:
                raise RuntimeError("a failure for the test")
            if step == run["term_at"]:
                os.kill(os.getpid(), signal.SIGTERM)
            if step == run["kill_at"]:
                # Killed while training on after the previous epoch's checkpoint is in place (it is finished
                # in the background: without waiting, the kill could land before it is).
                latest, deadline = run.run_dir / "checkpoints" / "latest.pt", time.monotonic() + 60
                while epoch > 0 and time.monotonic() < deadline and not (
                    latest.exists() and torch.load(latest, weights_only=True)["epoch"] == epoch - 1
                ):
                    time.sleep(0.01)
                os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(run["sleep"])
        x, y = batch
        return {"loss": torch.nn.functional.mse_loss(model(x), y), "mae": (model(x) - y).abs().mean()}

    run.configure_optimizers(lambda model: torch.optim.SGD(model.parameters(), lr=run["lr"]))
    x = torch.randn(16, 3, generator=torch.Generator().manual_seed(0))
    loader = DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=4)
    try:
        run(torch.nn.Linear(3, 1), loader, loader, max_epochs=run["max_epochs"], use_gpu=False, progress=False,
            log_every_n_steps=2)
    except SystemExit as stop:  # interrupted: blowtorch exits with 143
        print(f"exit {stop.code}", flush=True)
    except RuntimeError as error:
        print(f"failed: {error}", flush=True)
    return run.run_dir


# Each argument is one run's command line; "--resume PREVIOUS" continues the run before.
for arguments in sys.argv[1:]:
    argv = ["train.py", *shlex.split(arguments)]
    if "PREVIOUS" in argv:
        argv[argv.index("PREVIOUS")] = str(previous)
    previous = train(argv)
"""

RUNS = (
    "-n alpha",
    "-n beta with lr=0.1 max_epochs=2",
    "-n gamma with fail_at=5",
    "-n delta with term_at=6",
    "--resume PREVIOUS with term_at=13 max_epochs=4",
    "--resume PREVIOUS -c 'the last epoch' with term_at=-1",
    "-u -n epsilon",
    "-n eta with kill_at=1",
)


@dataclass(frozen=True)
class Runs:
    """The save_path of ``cli_runs`` and its run directories by run name."""

    base: Path  # holds train.py and train_logs/
    save_path: Path
    dirs: dict[str, Path]

    def copy(self, destination: Path) -> Runs:
        """A copy to damage: the same runs under ``destination``."""
        shutil.copytree(self.base, destination, symlinks=True)
        save_path = destination / self.save_path.name
        return Runs(destination, save_path, {name: save_path / path.name for name, path in self.dirs.items()})


@pytest.fixture(scope="session")
def cli_runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    base = tmp_path_factory.mktemp("cli_runs")
    script = write_script(base, MAKE_RUNS, "train.py")
    for batch in (RUNS, ("-n zeta with kill_at=9",)):  # a SIGKILL ends its process: one per process
        result = run_python(script, *batch, cwd=base)
        assert result.returncode == -signal.SIGKILL, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    save_path = base / "train_logs"
    dirs = {path.name[20:].rsplit("-", 1)[0]: path for path in save_path.iterdir() if path.name != "sacred"}
    assert sorted(dirs) == ["alpha", "beta", "delta", "epsilon", "eta", "gamma", "zeta"]
    return Runs(base, save_path, dirs)


@pytest.fixture
def blowtorch_command():
    """``blowtorch_command(*args, cwd=..., env=...)``: ``python -m blowtorch ARGS`` as a subprocess, this
    checkout's blowtorch first on the path (an ``env`` PYTHONPATH comes before it)."""

    def command(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        env = dict(env or {})
        path = os.pathsep.join(p for p in (env.pop("PYTHONPATH", None), str(REPO), os.environ.get("PYTHONPATH")) if p)
        full_env = {**os.environ, **env, "PYTHONPATH": path}
        return subprocess.run(
            [sys.executable, "-m", "blowtorch", *args], cwd=cwd, capture_output=True, text=True, timeout=180, env=full_env
        )

    return command
