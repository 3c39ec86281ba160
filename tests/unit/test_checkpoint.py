import errno
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
    with pytest.raises(
        CheckpointError,
        match=r"could not write the checkpoint .*latest\.pt of epoch 1 \(global step 10\): the disk went away half-way\. "
        r"The checkpoints already in .* are intact",
    ):
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


def test_no_moment_of_a_save_leaves_a_file_that_looks_corrupt(tmp_path, monkeypatch):
    # A crash can come between any two renames of a save event (manifest, latest.pt, best.pt, epoch-<n>.pt):
    # at each of those moments every checkpoint file must load, verified against the manifest then on disk.
    store = CheckpointStore(tmp_path, keep_last_epochs=1)
    store.save(payload(0, size=1000), epoch_end=True, is_best=True)
    real_replace = os.replace
    seen = []

    def check_then_replace(source, target):
        for moment in ("before", "after"):
            if moment == "after":
                real_replace(source, target)
            epochs = {p.name: load_checkpoint(p)["epoch"] for p in sorted(tmp_path.glob("*.pt"))}
            seen.append((Path(target).name, moment, epochs))

    monkeypatch.setattr(os, "replace", check_then_replace)
    store.save(payload(1, size=1000), epoch_end=True, is_best=True)
    monkeypatch.undo()
    assert [(name, moment) for name, moment, _ in seen] == [
        (name, moment) for name in (MANIFEST, "latest.pt", "best.pt", "epoch-1.pt") for moment in ("before", "after")
    ]
    assert seen[0][2] == {"best.pt": 0, "epoch-0.pt": 0, "latest.pt": 0}
    assert seen[3][2] == {"best.pt": 0, "epoch-0.pt": 0, "latest.pt": 1}  # latest.pt is new, the others are not yet
    assert seen[-1][2] == {"best.pt": 1, "epoch-0.pt": 0, "epoch-1.pt": 1, "latest.pt": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "epoch-1.pt", "latest.pt", MANIFEST]  # epoch-0.pt pruned last


def test_equal_files_are_one_inode_and_best_keeps_its_own_when_latest_moves_on(tmp_path):
    store = CheckpointStore(tmp_path, keep_last_epochs=1)
    store.save(payload(0), epoch_end=True, is_best=True)
    names = ("latest.pt", "best.pt", "epoch-0.pt")
    assert len({(tmp_path / name).stat().st_ino for name in names}) == 1  # hard links: written once
    assert all(not (tmp_path / name).is_symlink() and load_checkpoint(tmp_path / name)["epoch"] == 0 for name in names)
    store.save(payload(1), epoch_end=True, is_best=False)
    assert (tmp_path / "best.pt").stat().st_ino != (tmp_path / "latest.pt").stat().st_ino
    assert (tmp_path / "best.pt").stat().st_nlink == 1  # epoch-0.pt is gone (keep_last_epochs=1), latest.pt is new
    assert load_checkpoint(tmp_path / "best.pt")["epoch"] == 0 and load_checkpoint(tmp_path / "latest.pt")["epoch"] == 1
    assert load_checkpoint(tmp_path / "epoch-1.pt")["epoch"] == 1


def test_without_hard_links_equal_files_are_copies(tmp_path, monkeypatch):
    def no_hard_links(source, target):  # as on file systems that have none (FAT, some network shares)
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_hard_links)
    store = CheckpointStore(tmp_path)
    store.save(payload(0, size=1000), epoch_end=True, is_best=True)
    assert (tmp_path / "best.pt").stat().st_ino != (tmp_path / "latest.pt").stat().st_ino
    assert (tmp_path / "best.pt").read_bytes() == (tmp_path / "latest.pt").read_bytes()
    assert load_checkpoint(tmp_path / "best.pt")["epoch"] == 0


def test_one_manifest_write_and_four_fsyncs_per_save_event(tmp_path, monkeypatch):
    store = CheckpointStore(tmp_path, keep_last_epochs=2)
    store.save(payload(0), epoch_end=True, is_best=True)
    real_fsync, real_replace = os.fsync, os.replace
    fsyncs, replaced = [], []
    monkeypatch.setattr(os, "fsync", lambda descriptor: (fsyncs.append(descriptor), real_fsync(descriptor))[1])
    monkeypatch.setattr(os, "replace", lambda source, target: (replaced.append(Path(target).name), real_replace(source, target))[1])
    store.save(payload(1), epoch_end=True, is_best=True)
    monkeypatch.undo()
    assert len(fsyncs) == 4  # the file, the manifest, the directory before and after the renames
    assert replaced == [MANIFEST, "latest.pt", "best.pt", "epoch-1.pt"]


def test_temp_files_of_a_killed_writer_are_removed(tmp_path):
    store = CheckpointStore(tmp_path)
    store.save(payload(0), epoch_end=True, is_best=False)
    (tmp_path / ".latest.pt.999999.tmp").write_bytes(b"half a checkpoint")
    store.remove_stale_temporaries()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.pt", MANIFEST]


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(CheckpointError, match="text.pt is not a readable checkpoint"):
        load_checkpoint(tmp_path / "text.pt")
    torch.save({"weights": torch.ones(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="other.pt is not a blowtorch checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_non_finite_parameters_are_never_checkpointed(bad, dtype):
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(3, 2).to(dtype))
    model.register_parameter("empty", torch.nn.Parameter(torch.empty(0)))  # no elements: nothing to check
    model[0].weight.requires_grad_(False)  # frozen parameters are checked too
    check_finite_parameters(model, epoch=0)
    with torch.no_grad():
        model[1].bias[1] = bad
    with pytest.raises(TrainingError, match=r"in epoch 3 the model parameters \['1.bias'\] became NaN or inf"):
        check_finite_parameters(model, epoch=3)
    with torch.no_grad():
        model[1].bias[1] = 0.0
        model[0].weight[0, 0] = bad
    with pytest.raises(TrainingError, match=r"\['0.weight'\] became NaN or inf"):
        check_finite_parameters(model, epoch=3)


def test_a_flipped_byte_torch_load_would_accept_is_caught_in_a_large_checkpoint(tmp_path):
    # Over 4 MB the file's fsync and its CRC-32 run side by side; the CRC must still be the file's.
    store = CheckpointStore(tmp_path)
    store.save(payload(3, size=2_000_000), epoch_end=True, is_best=False)  # 8 MB of float32
    latest = tmp_path / "latest.pt"
    assert load_checkpoint(latest)["epoch"] == 3
    data = bytearray(latest.read_bytes())
    data[len(data) // 2] ^= 0x01  # inside the tensor's bytes: torch.load does not check CRCs and loads it
    latest.write_bytes(bytes(data))
    assert torch.load(latest, weights_only=True)["epoch"] == 3
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(latest)


def test_the_users_own_torch_save_keeps_its_zip_checksums(tmp_path):
    import zipfile

    CheckpointStore(tmp_path / "run").save(payload(0), epoch_end=True, is_best=True)  # ours skips torch's record CRCs
    torch.save({"w": torch.ones(3)}, tmp_path / "mine.pt")
    with zipfile.ZipFile(tmp_path / "mine.pt") as archive:
        assert archive.testzip() is None  # every record's CRC-32 is there and right
