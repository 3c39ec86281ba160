"""Signals and crashes against real training processes: SIGINT, SIGTERM, SIGKILL, a full disk."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from blowtorch.checkpoint import load_checkpoint
from tests.helpers import assert_ok, only_run_dir, read_json, run_python, write_script

SCRIPT = """
import os
import signal
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from blowtorch import Run

run = Run(random_seed=5)


@run.config
def settings():
    max_epochs = 4
    sleep = 0.0
    every = None
    keep = 0
    width = 64


PAUSE_AT_STEP = int(os.environ.get("PAUSE_AT_STEP", -1))


def pause_until_signalled():
    # Tell the test that this step is reached, then wait until blowtorch's handler has seen a signal.
    Path("paused").touch()
    stop = signal.getsignal(signal.SIGINT).__self__  # the StopRequest installed while training
    deadline = time.monotonic() + 120
    while not stop.requested:
        if time.monotonic() > deadline:
            raise RuntimeError("no signal came")
        time.sleep(0.005)
    Path("signalled").touch()


@run.train_step
@run.validate_step
def compute(batch, model, step, is_validate):
    if step == PAUSE_AT_STEP and not is_validate:
        pause_until_signalled()
    time.sleep(run["sleep"])
    x, y = batch
    return ((model(x) - y) ** 2).mean()


@run.configure_optimizers
def configure(model):
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    return optimizer, torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.9)


g = torch.Generator().manual_seed(0)
x = torch.randn(200, 8, generator=g)
y = x.sum(1, keepdim=True)
model = nn.Sequential(nn.Linear(8, run["width"]), nn.ReLU(), nn.Dropout(0.2), nn.Linear(run["width"], 1))
train_loader = DataLoader(TensorDataset(x, y), batch_size=10, shuffle=True)
val_loader = DataLoader(TensorDataset(x[:40], y[:40]), batch_size=20)
print("ready", flush=True)
run(model, train_loader, val_loader, max_epochs=run["max_epochs"], use_gpu=False,
    checkpoint_every_n_steps=run["every"], keep_last_epochs=run["keep"])
"""


@pytest.fixture
def script(tmp_path):
    return write_script(tmp_path, SCRIPT)


_started: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_process_outlives_its_test():
    yield
    while _started:
        process = _started.pop()
        if process.poll() is None:  # the test failed before it ended its run
            process.kill()
            process.communicate()


def start(script: Path, *args: str, cwd: Path | None = None, pause_at_step: int | None = None) -> subprocess.Popen:
    """Start the script; with ``pause_at_step`` its training step of that global step (counted from 0) creates the
    file ``paused`` in ``cwd`` and waits until a SIGINT/SIGTERM has reached blowtorch's handler, then creates
    ``signalled`` and goes on (or, without a signal, waits to be killed)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if pause_at_step is not None:
        env["PAUSE_AT_STEP"] = str(pause_at_step)
    process = subprocess.Popen(
        [sys.executable, str(script), *args], cwd=cwd or script.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _started.append(process)
    return process


def wait_for(condition, timeout=90.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def frozen_while(process: subprocess.Popen, condition) -> bool:
    """Stop ``process`` (SIGSTOP); True, leaving it stopped, if ``condition`` holds then, else let it go on."""
    process.send_signal(signal.SIGSTOP)
    wait_for(lambda: all(stopped(task) for task in Path(f"/proc/{process.pid}/task").iterdir()), what="SIGSTOP to take effect")
    if condition():
        return True
    process.send_signal(signal.SIGCONT)
    return False


def files_open_by(pid: int) -> list[Path]:
    files = []
    for descriptor in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(FileNotFoundError):  # closed meanwhile
            files.append(Path(os.readlink(descriptor)))
    return files


def stopped(task: Path) -> bool:
    try:
        return (task / "stat").read_text().rsplit(")", 1)[1].split()[0] in "tTZX"  # stopped, or exited
    except FileNotFoundError:  # a thread that ended
        return True


def model_of(run_dir: Path) -> dict:
    return load_checkpoint(run_dir / "checkpoints" / "latest.pt")["model"]


def assert_same_model(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_finishes_the_step_checkpoints_and_resumes_exactly(tmp_path, script, sig, code):
    straight_dir = tmp_path / "straight"
    assert_ok(run_python(script, "with", "sleep=0.002", cwd=tmp_path))
    only_run_dir(tmp_path / "train_logs").rename(straight_dir)

    process = start(script, "with", "sleep=0.02", pause_at_step=45)  # 20 steps an epoch: inside epoch 2
    wait_for(lambda: (tmp_path / "paused").exists() or process.poll() is not None, what="step 45")
    process.send_signal(sig)
    _, err = process.communicate(timeout=60)
    assert process.returncode == code, err

    run_dir = only_run_dir(tmp_path / "train_logs")
    assert read_json(tmp_path / "train_logs" / "sacred" / "2" / "run.json")["status"] == "INTERRUPTED"
    checkpoint = load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    assert checkpoint["position"] is not None and checkpoint["epoch"] == 2  # written at the step, inside the epoch
    # at the end of the step the signal came in (global step 45, the 6th of epoch 2), not later
    assert checkpoint["state"]["global_step"] == 46 and checkpoint["position"]["batches_done"] == 6
    log = (run_dir / "log.txt").read_text().splitlines()
    assert f"interrupted by {sig.name} in epoch 2" in log[-3]
    assert f"To resume: python {script} --resume {run_dir}" in log[-2]
    assert f"To resume: python {script} --resume {run_dir}" in err  # on the console too
    assert log[-1].endswith("run ended: INTERRUPTED")

    result = run_python(script, "--resume", str(run_dir), "with", "sleep=0.002", cwd=tmp_path)
    assert_ok(result)
    assert "sleep: 0.02 -> 0.002" in result.stderr  # the command-line update on top of the checkpoint's config
    assert_same_model(model_of(run_dir), model_of(straight_dir))
    resumed_info = read_json(tmp_path / "train_logs" / "sacred" / "3" / "info.json")
    assert resumed_info["resumed_from"]["parent_run_id"] == "2" and resumed_info["resumed_from"]["inside_epoch"]


def test_a_second_ctrl_c_aborts_at_once(tmp_path, script):
    process = start(script, "with", "sleep=600", pause_at_step=0)  # a step that would take ten minutes
    wait_for(lambda: (tmp_path / "paused").exists() or process.poll() is not None, what="the first step")
    process.send_signal(signal.SIGINT)
    wait_for(lambda: (tmp_path / "signalled").exists() or process.poll() is not None, what="the first Ctrl-C to arrive")
    process.send_signal(signal.SIGINT)  # while the first step sleeps
    process.communicate(timeout=120)  # well before the step could finish
    assert process.returncode == 130
    run_dir = only_run_dir(tmp_path / "train_logs")
    assert not (run_dir / "checkpoints" / "latest.pt").exists()
    assert "aborted by Ctrl-C" in (run_dir / "log.txt").read_text()
    assert read_json(tmp_path / "train_logs" / "sacred" / "1" / "run.json")["status"] == "INTERRUPTED"


def test_sigkill_inside_an_epoch_then_resume_equals_an_uninterrupted_run(tmp_path, script):
    assert_ok(run_python(script, "with", "every=3", cwd=tmp_path))
    straight = only_run_dir(tmp_path / "train_logs")
    straight.rename(tmp_path / "straight")

    process = start(script, "with", "every=3", pause_at_step=49)  # the step after the checkpoint at step 48
    wait_for(lambda: (tmp_path / "paused").exists() or process.poll() is not None, what="step 49")
    process.kill()
    process.communicate(timeout=30)
    run_dir = only_run_dir(tmp_path / "train_logs")
    latest = read_json(run_dir / "checkpoints" / "manifest.json")["files"]["latest.pt"]
    assert (latest["epoch"], latest["global_step"], latest["mid_epoch"]) == (2, 48, True)  # step 48 is lost: redone
    assert read_json(tmp_path / "train_logs" / "sacred" / "2" / "run.json")["status"] == "RUNNING"  # killed: no status

    assert_ok(run_python(script, "--resume", str(run_dir), cwd=tmp_path))
    assert_same_model(model_of(run_dir), model_of(tmp_path / "straight"))


def test_sigkill_during_checkpoint_writes_never_leaves_an_unreadable_checkpoint(tmp_path, script):
    # A wide model and a checkpoint after every step: the process is almost always writing one.
    for attempt in range(3):
        workdir = tmp_path / f"attempt-{attempt}"
        workdir.mkdir()
        process = start(script, "with", "width=400000", "every=1", "keep=2", "max_epochs=50", cwd=workdir)
        checkpoints = workdir / "train_logs"
        wait_for(lambda c=checkpoints: any(c.glob("*/checkpoints/best.pt")), what="the first checkpoints")
        wait_for(lambda p=process: frozen_while(p, lambda: any("latest.pt" in f.name for f in files_open_by(p.pid))),
                 what="the process stopped while it writes latest.pt (or its temp file)")
        process.kill()  # exactly there
        process.communicate(timeout=30)
        run_dir = only_run_dir(checkpoints)
        for name in ("latest.pt", "best.pt"):
            checkpoint = load_checkpoint(run_dir / "checkpoints" / name)  # verifies the manifest checksum
            assert checkpoint["model"]["0.weight"].shape == (400000, 8)


def checksumming_a_checkpoint(pid: int) -> bool:
    """Whether the process reads a checkpoint's temp file: the checksum, in the thread that finishes a write
    while training goes on (the training thread only ever writes it)."""
    for descriptor in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(FileNotFoundError):  # closed meanwhile
            if re.fullmatch(r"\.latest\.pt\.\d+\.tmp", Path(os.readlink(descriptor)).name):
                flags = (Path(f"/proc/{pid}/fdinfo") / descriptor.name).read_text().split("flags:")[1].split()[0]
                if int(flags, 8) & os.O_ACCMODE == os.O_RDONLY:
                    return True
    return False


def test_sigkill_while_a_write_is_finished_in_the_background_keeps_the_previous_checkpoint(tmp_path, script):
    process = start(script, "with", "width=200000", "every=1", "max_epochs=50")
    checkpoints = tmp_path / "train_logs"
    wait_for(lambda: any(checkpoints.glob("*/checkpoints/best.pt")), what="the first checkpoints")
    wait_for(lambda: frozen_while(process, lambda: checksumming_a_checkpoint(process.pid)),
             what="the process stopped while it checksums a new latest.pt in the background")
    process.kill()  # exactly there: training has moved on, the new checkpoint is not in place yet
    process.communicate(timeout=30)
    run_dir = only_run_dir(checkpoints)
    manifest = read_json(run_dir / "checkpoints" / "manifest.json")["files"]
    latest = load_checkpoint(run_dir / "checkpoints" / "latest.pt")  # verified against the manifest: intact
    assert latest["state"]["global_step"] == manifest["latest.pt"]["global_step"]  # the manifest of the write before
    assert load_checkpoint(run_dir / "checkpoints" / "best.pt")["model"]["0.weight"].shape == (200000, 8)
    assert [p.name for p in (run_dir / "checkpoints").glob(".latest.pt.*.tmp")]  # the killed write's temp file is left

    # Resuming takes the run directory again: the killed process's temp file goes, the checkpoint is the one above.
    result = run_python(script, "--resume", str(run_dir), "with", "max_epochs=1", cwd=tmp_path)
    assert_ok(result)
    assert f"global step {latest['state']['global_step']}" in (run_dir / "log.txt").read_text()
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["best.pt", "latest.pt", "manifest.json"]


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root (CI runs as root)")
def test_a_full_disk_stops_the_run_and_keeps_the_previous_checkpoints(tmp_path, script):
    disk = tmp_path / "disk"
    disk.mkdir()
    check = (
        "from pathlib import Path; from blowtorch.checkpoint import load_checkpoint; "
        "directory = next(Path('train_logs').glob('*/checkpoints')); "
        "print('intact epochs', sorted(load_checkpoint(p)['epoch'] for p in directory.glob('*.pt')))"
    )
    # 3 MiB of disk: epoch 0 writes 1 MiB (no optimizer state yet), epoch 1 would need 3 MiB more.
    command = (
        f"mount -t tmpfs -o size=3m tmpfs {disk} && cd {disk} && "
        f"{{ {sys.executable} {script} with width=25000 keep=10 max_epochs=6; echo exit=$?; {sys.executable} -c \"{check}\"; }}"
    )
    result = subprocess.run(["unshare", "--mount", "sh", "-c", command], capture_output=True, text=True, timeout=120)
    assert "exit=1" in result.stdout, result.stderr
    assert re.search(
        r"CheckpointError: not enough disk space to write .*/checkpoints/latest.pt: it needs about 3\.\d MiB, "
        r"2\.\d MiB are free on that file system\. The previous checkpoints are intact",
        result.stderr,
    ), result.stderr
    assert "intact epochs [0, 0, 0]" in result.stdout  # latest.pt, best.pt, epoch-0.pt


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root (CI runs as root)")
def test_a_disk_that_fills_up_during_a_write_keeps_the_previous_checkpoint(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    program = write_script(
        tmp_path,
        """
        import pathlib
        import torch
        from blowtorch.checkpoint import load_checkpoint
        from blowtorch.checkpoint_files import CheckpointStore
        from blowtorch.errors import CheckpointError

        def payload(epoch, size):
            return {"format": "blowtorch-checkpoint", "epoch": epoch, "state": {"global_step": epoch}, "position": None,
                    "model": {"w": torch.zeros(size)}}

        store = CheckpointStore(pathlib.Path("checkpoints"))
        store.save(payload(0, 200_000), epoch_end=True, is_best=True)  # 0.8 MB
        store._check_free_space = lambda needed, name: None  # another process takes the space after the check
        try:
            store.save(payload(1, 300_000), epoch_end=True, is_best=False)  # 1.2 MB do not fit in what is left
        except CheckpointError as error:
            print("error:", error)
        print("files:", sorted(p.name for p in pathlib.Path("checkpoints").iterdir()))
        print("latest epoch:", load_checkpoint(pathlib.Path("checkpoints/latest.pt"))["epoch"])
        """,
        name="fill.py",
    )
    command = f"mount -t tmpfs -o size=1500k tmpfs {disk} && cd {disk} && {sys.executable} {program}"
    result = subprocess.run(["unshare", "--mount", "sh", "-c", command], capture_output=True, text=True, timeout=120)
    expected = r"error: not enough disk space to write checkpoints/latest.pt: it needs about 1\.\d MiB"
    assert re.search(expected, result.stdout), result.stdout + result.stderr
    assert "files: ['best.pt', 'latest.pt', 'manifest.json']" in result.stdout  # the temp file is gone
    assert "latest epoch: 0" in result.stdout
