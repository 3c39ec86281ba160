"""Which run directory ``resume="auto"`` continues."""

from __future__ import annotations

import os

from blowtorch.run_lock import RunDirectoryLock
from blowtorch.run_status import find_unfinished_run, read_status, write_status


def make_run(save_path, name, number, status, experiment="train", checkpoint=True, age=0):
    run_dir = save_path / f"2026-11-25_09-05-0{number}-{name}-{number}"
    (run_dir / "checkpoints").mkdir(parents=True)
    if checkpoint:
        (run_dir / "checkpoints" / "latest.pt").write_bytes(b"state")
    if status is not None:
        write_status(run_dir, status, experiment, number, 1, 10)
        os.utime(run_dir / "status.json", ns=(10**18 - age, 10**18 - age))  # older when age is larger
    return run_dir


def test_the_newest_unfinished_run_with_a_checkpoint_of_the_same_experiment_and_name_is_chosen(tmp_path):
    make_run(tmp_path, "a", 1, "INTERRUPTED", age=50)
    killed = make_run(tmp_path, "a", 2, "RUNNING", age=40)  # killed with SIGKILL: no process holds it
    make_run(tmp_path, "a", 3, "COMPLETED", age=0)
    make_run(tmp_path, "a", 4, "FAILED", checkpoint=False, age=0)  # failed before its first checkpoint
    make_run(tmp_path, "a", 5, "INTERRUPTED", experiment="other", age=0)
    make_run(tmp_path, "a", 6, None, age=0)  # no status.json: not a run blowtorch can vouch for
    named_b = make_run(tmp_path, "b", 7, "INTERRUPTED", age=30)
    (tmp_path / "notes").mkdir()

    found = find_unfinished_run(tmp_path, "train", "a")
    assert found is not None and (found.path, found.status, found.epoch) == (killed, "RUNNING", 1)
    assert find_unfinished_run(tmp_path, "train", None).path == named_b  # no name given: any name
    assert find_unfinished_run(tmp_path, "train", "c") is None
    assert find_unfinished_run(tmp_path / "missing", "train", None) is None


def test_a_run_that_is_still_training_is_not_continued(tmp_path):
    older = make_run(tmp_path, "a", 1, "INTERRUPTED", age=50)
    running = make_run(tmp_path, "a", 2, "RUNNING", age=0)
    with RunDirectoryLock(running):
        assert find_unfinished_run(tmp_path, "train", "a").path == older
    assert find_unfinished_run(tmp_path, "train", "a").path == running


def test_status_file_is_read_back_and_a_damaged_one_is_ignored(tmp_path):
    write_status(tmp_path, "RUNNING", "train", 7, 0, 0)
    assert read_status(tmp_path)["sacred_run_id"] == "7"
    (tmp_path / "status.json").write_text('{"status": ')
    assert read_status(tmp_path) is None
    assert not list(tmp_path.glob(".*tmp"))
