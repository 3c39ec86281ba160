import re

import torch

from blowtorch.loggers.progress import Progress


def test_without_a_terminal_a_plain_status_line_is_printed_now_and_then(capsys, monkeypatch):
    monkeypatch.setattr("blowtorch.loggers.progress._LOSS_REFRESH_SECONDS", 0.0)  # read the loss every step
    progress = Progress(interactive=False, line_interval=0.0)  # a line every step, to see the format
    progress.start_pass("train", epoch=3, total=4)
    for _ in range(4):
        progress.advance(torch.tensor(0.25))
    progress.end_pass()
    progress.log_metrics({"loss": 0.25}, "train", epoch=3, step=16)
    lines = capsys.readouterr().err.splitlines()
    assert re.fullmatch(r"epoch 3 train  2/4 \(50%\)  loss 0\.25  [\d.]+ steps/s, ETA 0:00:\d\d", lines[1])
    assert lines[-1].startswith("epoch 3 train loss=0.25")
    assert "\r" not in "".join(lines)


def test_step_phases_are_not_printed_and_disabled_progress_prints_nothing(capsys):
    progress = Progress(interactive=False, line_interval=0.0)
    progress.log_metrics({"loss": 1.0}, "train_step", epoch=0, step=5)
    quiet = Progress(enabled=False, interactive=False, line_interval=0.0)
    quiet.start_pass("train", epoch=0, total=2)
    quiet.advance(1.0)
    quiet.log_metrics({"loss": 1.0}, "train", epoch=0, step=2)
    assert capsys.readouterr().err == ""


def test_a_resumed_pass_counts_from_where_it_stopped(capsys):
    progress = Progress(interactive=False, line_interval=0.0)
    progress.start_pass("train", epoch=1, total=10, done=6)
    progress.advance(None)
    assert "7/10 (70%)" in capsys.readouterr().err


def test_the_loss_is_read_from_the_device_at_most_once_per_refresh_interval(capsys):
    progress = Progress(interactive=False, line_interval=0.0)  # default refresh: 1 s, far longer than this test
    progress.start_pass("train", epoch=0, total=3)
    for _ in range(3):
        progress.advance(torch.tensor(0.5))
    assert "loss" not in capsys.readouterr().err
