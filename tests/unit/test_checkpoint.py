import io
import json
import os
from pathlib import Path

import pytest
import torch

from blowtorch import CheckpointError, TrainingError
from blowtorch.checkpoint import FORMAT, check_finite_parameters, load_checkpoint
from blowtorch.checkpoint_files import MANIFEST, CheckpointStore


def payload(epoch, step=None, mid_epoch=False, size=4):
    return {
        "format": FORMAT,
        "format_version": 1,
        "epoch": epoch,
        "model": {"w": torch.full((size,), float(epoch))},
        "state": {"global_step": step if step is not None else 10 * epoch},
        "position": {"batches_done": 1} if mid_epoch else None,
    }


def test_a_write_that_fails_half_way_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    store = CheckpointStore(tmp_path)
    store.save(payload(0, size=10_000), epoch_end=True, is_best=True)
    before = {p.name: p.read_bytes() for p in tmp_path.glob("*.pt")}
    real_save = torch.save
    at_the_moment_of_failure = []

    def save_half_then_fail(obj, f, *args, **kwargs):
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        data = buffer.getvalue()
        if isinstance(f, (str, os.PathLike)):
            with open(f, "wb") as handle:
                handle.write(data[: len(data) // 2])
        else:
            f.write(data[: len(data) // 2])
            f.flush()
        # What a crash here (SIGKILL, power loss: no cleanup runs) would leave as latest.pt.
        try:
            at_the_moment_of_failure.append(load_checkpoint(tmp_path / "latest.pt")["epoch"])
        except Exception as error:  # noqa: BLE001 - recorded and asserted below
            at_the_moment_of_failure.append(error)
        raise RuntimeError("the disk went away half-way")

    monkeypatch.setattr(torch, "save", save_half_then_fail)
    with pytest.raises(CheckpointError, match=r"could not write the checkpoint .*latest\.pt: the disk went away half-way"):
        store.save(payload(1, size=10_000), epoch_end=True, is_best=True)
    monkeypatch.undo()

    assert at_the_moment_of_failure == [0]  # half of the new file was written, latest.pt was still the old one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "latest.pt", MANIFEST]  # no partial or temp file left
    assert {p.name: p.read_bytes() for p in tmp_path.glob("*.pt")} == before  # byte for byte
    assert load_checkpoint(tmp_path / "latest.pt")["epoch"] == 0  # and the manifest still accepts it
    assert load_checkpoint(tmp_path / "best.pt")["epoch"] == 0
    store.save(payload(1), epoch_end=True, is_best=False)  # the next write works
    assert load_checkpoint(tmp_path / "latest.pt")["epoch"] == 1


class _RunsCodeWhenUnpickled:
    def __init__(self, mark):
        self.mark = mark

    def __reduce__(self):
        return (Path.touch, (self.mark,))


def test_checkpoints_load_with_weights_only_and_arbitrary_objects_are_refused(tmp_path):
    store = CheckpointStore(tmp_path / "good")
    store.save(payload(0), epoch_end=True, is_best=False)
    assert torch.load(tmp_path / "good" / "latest.pt", weights_only=True)["epoch"] == 0

    # A checkpoint whose unpickling would run code: load_checkpoint must not run it.
    mark = tmp_path / "code-ran"
    store = CheckpointStore(tmp_path / "bad")
    store.save({**payload(0), "extra": _RunsCodeWhenUnpickled(mark)}, epoch_end=True, is_best=False)
    with pytest.raises(CheckpointError, match=r"latest\.pt is not a readable checkpoint \(UnpicklingError: Weights only load failed"):
        load_checkpoint(tmp_path / "bad" / "latest.pt")
    assert not mark.exists()
    torch.load(tmp_path / "bad" / "latest.pt", weights_only=False)  # the file itself is fine: it does run code
    assert mark.exists()


def test_best_is_a_real_file_and_keeps_its_epoch_when_latest_moves_on(tmp_path):
    store = CheckpointStore(tmp_path)
    store.save(payload(0), epoch_end=True, is_best=True)
    store.save(payload(1), epoch_end=True, is_best=False)
    store.save(payload(2, mid_epoch=True), epoch_end=False, is_best=False)
    assert not (tmp_path / "best.pt").is_symlink()
    assert load_checkpoint(tmp_path / "best.pt")["epoch"] == 0
    assert load_checkpoint(tmp_path / "latest.pt")["epoch"] == 2


def test_keep_last_epochs(tmp_path):
    store = CheckpointStore(tmp_path, keep_last_epochs=2)
    for epoch in range(4):
        store.save(payload(epoch), epoch_end=True, is_best=epoch == 1)
    store.save(payload(4, mid_epoch=True), epoch_end=False, is_best=False)  # mid-epoch: latest.pt only
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == ["best.pt", "epoch-2.pt", "epoch-3.pt", "latest.pt"]
    assert load_checkpoint(tmp_path / "epoch-2.pt")["epoch"] == 2
    assert sorted(json.loads((tmp_path / MANIFEST).read_text())["files"]) == ["best.pt", "epoch-2.pt", "epoch-3.pt", "latest.pt"]


def test_truncated_or_corrupt_files_are_named(tmp_path):
    store = CheckpointStore(tmp_path)
    store.save(payload(0, size=10_000), epoch_end=True, is_best=False)
    latest = tmp_path / "latest.pt"
    data = latest.read_bytes()
    latest.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"checkpoint .*latest.pt is corrupt or truncated: it has \d+ bytes"):
        load_checkpoint(latest)
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    latest.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(latest)


def test_newest_first_orders_by_global_step(tmp_path):
    store = CheckpointStore(tmp_path, keep_last_epochs=3)
    store.save(payload(0), epoch_end=True, is_best=True)
    store.save(payload(1), epoch_end=True, is_best=False)
    store.save(payload(2, step=25, mid_epoch=True), epoch_end=False, is_best=False)
    names = [p.name for p in store.newest_first()]
    assert names[0] == "latest.pt" and names.index("epoch-1.pt") < names.index("epoch-0.pt")


def test_a_replacement_interrupted_between_manifest_and_rename_leaves_an_acceptable_file(tmp_path):
    store = CheckpointStore(tmp_path)
    store.save(payload(0), epoch_end=True, is_best=False)
    old = tmp_path / "latest.pt"
    # The manifest already announces the next file (first manifest write), the rename has not happened.
    store._record("latest.pt", (123, 456), {"epoch": 1, "global_step": 10}, keep_previous=True)
    assert load_checkpoint(old)["epoch"] == 0


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(CheckpointError, match="text.pt is not a readable checkpoint"):
        load_checkpoint(tmp_path / "text.pt")
    torch.save({"weights": torch.ones(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="other.pt is not a blowtorch checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_non_finite_parameters_are_never_checkpointed():
    model = torch.nn.Linear(2, 2)
    check_finite_parameters(model, epoch=0)
    with torch.no_grad():
        model.bias[0] = float("nan")
    with pytest.raises(TrainingError, match=r"in epoch 3 the model parameters \['bias'\] became NaN or inf"):
        check_finite_parameters(model, epoch=3)
