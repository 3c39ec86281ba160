"""Checkpoints finished in a background thread: run(...) waits for the last one, and a write that
fails there fails the run, naming the checkpoint, with the previous checkpoint intact."""

from __future__ import annotations

import errno
import os
import threading
import time

import pytest
import torch

from blowtorch import CheckpointError, Run
from blowtorch.checkpoint import load_checkpoint
from tests.helpers import linear_model, only_run_dir, read_json, regression_loaders

BACKGROUND = "blowtorch-checkpoint"  # the name of the thread that finishes checkpoint writes


def train(save_path, max_epochs, crash_at_step=None):
    run = Run(name="writes", argv=["writes.py"], random_seed=3, save_git_info=False)

    @run.train_step
    @run.validate_step
    def step(batch, model, step):
        if step == crash_at_step:
            raise RuntimeError("simulated crash")
        return ((model(batch[0]) - batch[1]) ** 2).mean()

    run.configure_optimizers(lambda model: torch.optim.Adam(model.parameters(), lr=0.01))
    train_loader, val_loader = regression_loaders()  # 4 steps an epoch
    return run(linear_model(), train_loader, val_loader, max_epochs=max_epochs, use_gpu=False, save_path=save_path, progress=False)


def in_background() -> bool:
    return threading.current_thread().name == BACKGROUND


def test_run_returns_once_the_last_checkpoint_is_on_disk(tmp_path, monkeypatch):
    real_fsync = os.fsync

    def slow_fsync(descriptor):
        if in_background():
            time.sleep(0.05)  # a slow disk: a run that did not wait for its last write would return before it is done
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", slow_fsync)
    summary = train(tmp_path, max_epochs=3)
    assert not [thread for thread in threading.enumerate() if thread.name == BACKGROUND]
    monkeypatch.undo()
    checkpoints = tmp_path / only_run_dir(tmp_path).name / "checkpoints"
    assert load_checkpoint(checkpoints / "latest.pt")["epoch"] == 2 == summary["epochs"] - 1  # verified: intact
    assert load_checkpoint(checkpoints / "best.pt")["epoch"] == summary["best_epoch"]
    assert read_json(checkpoints / "manifest.json")["files"]["latest.pt"]["epoch"] == 2
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best.pt", "latest.pt", "manifest.json"]  # no temp file


def fail_the_disk_after_the_first_save_event(monkeypatch):
    real_fsync = os.fsync
    events = []

    def failing_disk(descriptor):
        if in_background():
            events.append(descriptor)
            if len(events) > 4:  # the first save event (epoch 0, 4 fsyncs) works; the disk fails in epoch 1's
                raise OSError(errno.EIO, "Input/output error")
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", failing_disk)


@pytest.mark.parametrize("max_epochs, noticed", [(3, "at the next checkpoint"), (2, "at the end of the run")])
def test_a_failed_background_write_fails_the_run_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch, max_epochs, noticed):
    fail_the_disk_after_the_first_save_event(monkeypatch)
    with pytest.raises(CheckpointError) as raised:
        train(tmp_path, max_epochs=max_epochs)
    monkeypatch.undo()
    run_dir = only_run_dir(tmp_path)
    checkpoints = run_dir / "checkpoints"
    message = (
        f"could not write the checkpoint {checkpoints / 'latest.pt'} of epoch 1 (global step 8): [Errno 5] Input/output "
        f"error. The checkpoints already in {checkpoints} are intact"
    )
    assert str(raised.value) == message
    assert load_checkpoint(checkpoints / "latest.pt")["epoch"] == 0  # verified against the manifest: intact
    assert load_checkpoint(checkpoints / "best.pt")["epoch"] == 0
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best.pt", "latest.pt", "manifest.json"]  # no temp file
    log = (run_dir / "log.txt").read_text()
    where = "in epoch 2 at global step 12" if max_epochs == 3 else "in epoch 2 at global step 8"  # noticed there
    assert f"failed {where}: CheckpointError: {message}" in log, (noticed, log)
    assert read_json(run_dir / "status.json")["status"] == "FAILED"
    assert read_json(tmp_path / "sacred" / "1" / "run.json")["status"] == "FAILED"


def test_a_failed_background_write_is_not_hidden_by_the_error_that_ends_the_run(tmp_path, monkeypatch):
    fail_the_disk_after_the_first_save_event(monkeypatch)
    with (
        pytest.raises(RuntimeError, match="simulated crash"),
        pytest.warns(UserWarning, match=r"besides the error below, the last checkpoint could not be written: could not "
                                        r"write the checkpoint .*latest\.pt of epoch 1 \(global step 8\)"),
    ):
        train(tmp_path, max_epochs=3, crash_at_step=9)  # in epoch 2, before its checkpoint
    monkeypatch.undo()
    assert load_checkpoint(only_run_dir(tmp_path) / "checkpoints" / "latest.pt")["epoch"] == 0
