import pytest
import torch

from blowtorch import CheckpointError, TrainingError
from blowtorch.checkpoint import CheckpointWriter, check_finite_parameters, load_checkpoint, save_atomic


def test_atomic_save_leaves_no_temp_files_and_loads_with_weights_only(tmp_path):
    path = tmp_path / "latest.pt"
    save_atomic({"format": "blowtorch-checkpoint", "model": {"w": torch.ones(2)}, "epoch": 1}, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.pt"]
    assert torch.load(path, weights_only=True)["epoch"] == 1
    assert load_checkpoint(path)["epoch"] == 1


def test_best_is_a_real_file_not_a_symlink_and_survives_the_next_latest(tmp_path):
    writer = CheckpointWriter(tmp_path / "checkpoints")
    writer.write({"format": "blowtorch-checkpoint", "epoch": 0}, is_best=True)
    writer.write({"format": "blowtorch-checkpoint", "epoch": 1}, is_best=False)
    best, latest = tmp_path / "checkpoints" / "best.pt", tmp_path / "checkpoints" / "latest.pt"
    assert not best.is_symlink() and not latest.is_symlink()
    assert load_checkpoint(best)["epoch"] == 0
    assert load_checkpoint(latest)["epoch"] == 1


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
    with pytest.raises(TrainingError, match=r"after epoch 3 the model parameters \['bias'\] hold NaN or inf"):
        check_finite_parameters(model, epoch=3)
