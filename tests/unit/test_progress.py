import re

from blowtorch.loggers.progress import Progress


def test_without_a_terminal_a_plain_status_line_is_printed_now_and_then(capsys):
    progress = Progress(interactive=False, line_interval=0.0)  # a line every step, to see the format
    progress.start_pass("train", epoch=3, total=4)
    for _ in range(4):
        progress.advance()
        progress.show_loss(0.25)
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
    quiet.advance()
    quiet.show_loss(1.0)
    quiet.log_metrics({"loss": 1.0}, "train", epoch=0, step=2)
    assert capsys.readouterr().err == ""


def test_a_resumed_pass_counts_from_where_it_stopped(capsys):
    progress = Progress(interactive=False, line_interval=0.0)
    progress.start_pass("train", epoch=1, total=10, done=6)
    progress.advance()
    assert "7/10 (70%)" in capsys.readouterr().err
