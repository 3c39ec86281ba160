"""``--resume auto``: what a requeued cluster job runs. Real processes, a script without a seed."""

from __future__ import annotations

from pathlib import Path

import torch

from tests.helpers import assert_ok, read_json, run_python, write_script

SCRIPT = """
import os
import signal

import torch
from torch.utils.data import DataLoader, TensorDataset
from blowtorch import Run

run = Run(save_git_info=False)  # no seed: a random one, as in many scripts


@run.config
def settings():
    stop_at = -1  # SIGTERM to itself at this global step: the run ends INTERRUPTED, as a preempted job does
    max_epochs = 3


@run.train_step
@run.validate_step
def step(batch, model, step):
    if step == run["stop_at"]:
        os.kill(os.getpid(), signal.SIGTERM)
    x, y = batch
    return torch.nn.functional.mse_loss(model(x), y)


run.configure_optimizers(lambda model: torch.optim.SGD(model.parameters(), lr=0.05))
x = torch.randn(32, 3, generator=torch.Generator().manual_seed(0))
y = x.sum(1, keepdim=True)
loader = DataLoader(TensorDataset(x, y), batch_size=4, shuffle=True)
run(torch.nn.Linear(3, 1), loader, loader, max_epochs=run["max_epochs"], use_gpu=False, progress=False,
    optimize_first=True, checkpoint_every_n_steps=3)
"""


def run_dirs(save_path: Path) -> dict[str, Path]:
    """Run directories by run name (``<timestamp>-<name>-<N>``)."""
    return {p.name[20:].rsplit("-", 1)[0]: p for p in save_path.iterdir() if p.name != "sacred"}


def test_resume_auto_starts_fresh_then_continues_the_newest_unfinished_run_of_its_experiment(tmp_path):
    script = write_script(tmp_path, SCRIPT)
    save_path = tmp_path / "train_logs"

    first = run_python(script, "--resume", "auto", "with", "stop_at=5", cwd=tmp_path)
    assert first.returncode == 143, first.stderr
    assert f"resume=auto: no unfinished run of experiment 'train' in {save_path}; starting a new run" in first.stderr
    # Newer runs that auto must pass over: a completed one of this experiment, an interrupted one of another.
    assert_ok(run_python(script, "with", "max_epochs=2", cwd=tmp_path))
    assert run_python(script, "-n", "other", "with", "stop_at=4", cwd=tmp_path).returncode == 143
    (interrupted,) = [p for p in save_path.iterdir() if p.name.endswith("-1")]
    assert read_json(interrupted / "status.json")["status"] == "INTERRUPTED"
    assert read_json(run_dirs(save_path)["other"] / "status.json") | {"updated": None} == {
        "status": "INTERRUPTED", "experiment": "other", "sacred_run_id": "3", "epoch": 0, "global_step": 5, "max_epochs": 3,
        "best": None, "updated": None,
    }  # fmt: skip

    again = run_python(script, "--resume", "auto", "with", "stop_at=5", cwd=tmp_path)  # the requeued job: same command
    assert_ok(again)
    assert f"resume=auto: continuing {interrupted} (INTERRUPTED at epoch 0)" in again.stderr
    assert "differs from the config" not in again.stderr  # the same command line, and the checkpoint's seed
    assert sorted(p.name for p in save_path.iterdir()) == sorted(["sacred", *(p.name for p in run_dirs(save_path).values())])
    assert len(run_dirs(save_path)) == 3  # continued in its directory, no new one
    status = read_json(interrupted / "status.json")
    assert (status["status"], status["sacred_run_id"], status["epoch"]) == ("COMPLETED", "4", 3)
    sacred = save_path / "sacred"
    assert read_json(sacred / "4" / "config.json")["seed"] == read_json(sacred / "1" / "config.json")["seed"]
    resumed_from = read_json(sacred / "4" / "info.json")["resumed_from"]
    assert resumed_from["parent_run_id"] == "1" and resumed_from["global_step"] == 6  # stopped after step 5
    assert torch.load(interrupted / "checkpoints" / "latest.pt", weights_only=True)["epoch"] == 2  # the last of epochs 0-2
