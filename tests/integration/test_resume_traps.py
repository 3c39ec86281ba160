"""Resuming the wrong way: twice at once, from an older checkpoint, with nothing left, after Ctrl-C."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import assert_ok, only_run_dir, run_python, write_script

SCRIPT = """
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset
from blowtorch import Run

run = Run(random_seed=5, save_git_info=False)


@run.config
def settings():
    max_epochs = 3
    save_path = "train_logs"
    hold_at_step = -1  # at this global step, say so in 'holding' and wait until 'release' exists


@run.train_step
def step(batch, model, step):
    if step == run["hold_at_step"]:
        Path("holding").write_text("training")
        deadline = time.monotonic() + 120
        while not Path("release").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    x, y = batch
    return ((model(x) - y) ** 2).mean()


run.configure_optimizers(lambda model: torch.optim.SGD(model.parameters(), lr=0.05))
x = torch.randn(40, 3, generator=torch.Generator().manual_seed(0))
loader = DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=10)
run(torch.nn.Linear(3, 1), loader, max_epochs=run["max_epochs"], use_gpu=False, progress=False, save_path=run["save_path"],
    keep_last_epochs=5)
"""


def start(script: Path, *args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(script), *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip


def wait_for(path: Path, process: subprocess.Popen) -> None:
    """Until the training process says it holds (no sleeps that guess how long a step takes)."""
    deadline = time.monotonic() + 120
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the training process never reached its step"
        time.sleep(0.01)


def test_a_second_process_resuming_the_same_run_fails_at_once_and_a_killed_one_leaves_no_lock(tmp_path):
    script = write_script(tmp_path, SCRIPT)
    assert_ok(run_python(script, "with", "max_epochs=2", cwd=tmp_path))
    run_dir = only_run_dir(tmp_path / "train_logs")
    first = start(script, "--resume", str(run_dir), "with", "max_epochs=3", "hold_at_step=9", cwd=tmp_path)
    try:
        wait_for(tmp_path / "holding", first)
        log_before = (run_dir / "log.txt").read_text()
        second = run_python(script, "--resume", str(run_dir), "with", "max_epochs=3", cwd=tmp_path)
        assert second.returncode != 0
        assert f"{run_dir} is in use: another process is training in it right now" in second.stderr
        assert "Wait for that run to end (or stop it) before resuming it" in second.stderr
        assert (run_dir / "log.txt").read_text() == log_before  # the second one wrote nothing there
        assert len(list((tmp_path / "train_logs" / "sacred").glob("[0-9]*"))) == 2  # and recorded no run
    finally:
        first.kill()  # kill -9: no chance to release anything itself
        first.communicate()
    third = run_python(script, "--resume", str(run_dir), "with", "max_epochs=3", cwd=tmp_path)
    assert_ok(third)


def test_resuming_from_an_older_checkpoint_says_what_is_trained_again_and_marks_the_log(tmp_path):
    script = write_script(tmp_path, SCRIPT)
    assert_ok(run_python(script, "with", "max_epochs=4", cwd=tmp_path))
    run_dir = only_run_dir(tmp_path / "train_logs")
    resumed = run_python(script, "--resume", str(run_dir / "checkpoints" / "epoch-1.pt"), cwd=tmp_path)
    assert_ok(resumed)
    expected = "rewinding: epoch-1.pt (global step 8) is older than latest.pt (epoch 3, global step 16)"
    assert expected in resumed.stderr
    log = (run_dir / "log.txt").read_text()
    assert expected in log and log.index(expected) < log.rindex("epoch 2 train")
    assert len(re.findall(r"epoch 2 train", log)) == 2  # trained again, after the mark


def test_nothing_left_to_train_is_said_on_the_console(tmp_path):
    script = write_script(tmp_path, SCRIPT)
    assert_ok(run_python(script, "with", "max_epochs=2", cwd=tmp_path))
    run_dir = only_run_dir(tmp_path / "train_logs")
    resumed = run_python(script, "--resume", str(run_dir), cwd=tmp_path)
    assert_ok(resumed)
    assert "nothing left to train: epochs 0-1 are done and max_epochs=2 is the total; raise max_epochs" in resumed.stderr
    assert "train.py:" in resumed.stderr.split("nothing left to train")[0].splitlines()[-1]  # at the user's line


def test_after_ctrl_c_the_console_shows_the_resume_command_quoted_for_the_shell(tmp_path):
    script = write_script(tmp_path, SCRIPT)
    process = start(script, "with", "max_epochs=3", "hold_at_step=5", "save_path=my runs", cwd=tmp_path)
    wait_for(tmp_path / "holding", process)
    process.send_signal(signal.SIGINT)
    (tmp_path / "release").write_text("")
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    run_dir = only_run_dir(tmp_path / "my runs")
    command = f"python {script} --resume '{run_dir}'"
    assert f"To resume: {command}" in stderr.splitlines()
    assert f"To resume: {command}" in (run_dir / "log.txt").read_text()
    resumed = run_python(*shlex.split(command)[1:], cwd=tmp_path)  # the command works as printed
    assert_ok(resumed)
    assert "epoch 2 train" in (run_dir / "log.txt").read_text()
