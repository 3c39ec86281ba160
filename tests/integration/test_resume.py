"""Exact resume: a run stopped and resumed ends bit-identical to one that never stopped."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from blowtorch import CheckpointError, MissingFileError, Run
from tests.helpers import read_json, sacred_run_dirs


class DropoutNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 1))

    def forward(self, x):
        return self.layers(x)


def loaders(num_workers: int, own_generator: bool = False):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(96, 6, generator=generator)
    y = torch.sin(x.sum(1, keepdim=True))
    order = torch.Generator().manual_seed(3) if own_generator else None  # the loader draws its order from it
    train = DataLoader(TensorDataset(x, y), batch_size=10, shuffle=True, num_workers=num_workers, generator=order)  # 10 batches
    val = DataLoader(TensorDataset(x[:32], y[:32]), batch_size=16, num_workers=num_workers)
    return train, val


def train(save_path, *, max_epochs, num_workers=0, own_generator=False, resume=None, crash_at_step=None, interrupt_at=None, **options):
    """One blowtorch run as a user script would do it; returns the Run."""
    run = Run(name="exact", argv=["exact.py"], random_seed=11, save_git_info=False)

    @run.train_step
    def train_step(batch, model, step):
        if step == crash_at_step:
            raise RuntimeError("simulated crash")
        x, y = batch
        return {"loss": ((model(x) - y) ** 2).mean(), "noise": torch.rand(()) }

    @run.validate_step
    def validate_step(batch, model, epoch, batch_index):
        if interrupt_at == (epoch, batch_index):
            os.kill(os.getpid(), signal.SIGINT)  # as if Ctrl-C arrived during validation
        x, y = batch
        return {"loss": ((model(x) - y) ** 2).mean()}

    @run.configure_optimizers
    def configure_optimizers(model):
        optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
        return optimizer, torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)

    train_loader, val_loader = loaders(num_workers, own_generator)
    model = DropoutNet()
    run(
        model, train_loader, val_loader,
        max_epochs=max_epochs, use_gpu=False, save_path=save_path, resume=resume, progress=False, **options,
    )  # fmt: skip
    return run


def final_state(run_dir):
    return torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=True)


def assert_same_tensors(a, b, path="checkpoint"):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), f"{path} differs"
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            assert_same_tensors(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_tensors(x, y, f"{path}[{index}]")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def epoch_metrics(save_path):
    """Every sacred run's metrics under save_path merged: {name: {epoch: value}}."""
    merged: dict = {}
    for run_dir in sacred_run_dirs(save_path / "sacred"):
        for name, series in read_json(run_dir / "metrics.json").items():
            for step, value in zip(series["steps"], series["values"], strict=True):
                assert step not in merged.setdefault(name, {}), f"{name} at epoch {step} logged twice"
                merged[name][step] = value
    return merged


@pytest.mark.parametrize("num_workers, own_generator", [(0, False), (2, False), (0, True)])
def test_stop_after_an_epoch_and_resume_is_bit_identical(tmp_path, num_workers, own_generator):
    options = dict(num_workers=num_workers, own_generator=own_generator)
    straight = train(tmp_path / "straight", max_epochs=5, **options)
    first = train(tmp_path / "split", max_epochs=2, **options)
    resumed = train(tmp_path / "split", max_epochs=5, resume=first.run_dir, **options)

    assert resumed.run_dir == first.run_dir  # the same run directory goes on
    a, b = final_state(straight.run_dir), final_state(resumed.run_dir)
    assert a["epoch"] == b["epoch"] == 4
    for key in ("model", "optimizers", "schedulers", "metrics", "rng"):
        assert_same_tensors(a[key], b[key], key)
    assert a["state"] == b["state"]
    assert epoch_metrics(tmp_path / "straight") == epoch_metrics(tmp_path / "split")

    log = (resumed.run_dir / "log.txt").read_text()
    assert [line.split("] ")[1].split(" train")[0] for line in log.splitlines() if " train " in line] == [f"epoch {e}" for e in range(5)]
    info = read_json(sacred_run_dirs(tmp_path / "split" / "sacred")[1] / "info.json")
    assert info["resumed_from"]["parent_run_id"] == "1" and info["resumed_from"]["epoch"] == 1
    assert info["run_dir"] == str(first.run_dir)


@pytest.mark.parametrize("own_generator", [False, True])
def test_a_crash_inside_an_epoch_resumes_from_the_step_checkpoint(tmp_path, own_generator):
    straight = train(tmp_path / "straight", max_epochs=3, checkpoint_every_n_steps=4, own_generator=own_generator)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(tmp_path / "split", max_epochs=3, checkpoint_every_n_steps=4, crash_at_step=14, own_generator=own_generator)
    crashed_dir = next(p for p in (tmp_path / "split").iterdir() if p.name != "sacred")
    checkpoint = final_state(crashed_dir)
    assert checkpoint["position"]["batches_done"] == 2 and checkpoint["state"]["global_step"] == 12  # epoch 1, step 12

    resumed = train(tmp_path / "split", max_epochs=3, checkpoint_every_n_steps=4, resume=crashed_dir, own_generator=own_generator)
    a, b = final_state(straight.run_dir), final_state(resumed.run_dir)
    for key in ("model", "optimizers", "schedulers", "metrics"):
        assert_same_tensors(a[key], b[key], key)
    assert epoch_metrics(tmp_path / "straight") == epoch_metrics(tmp_path / "split")


def test_ctrl_c_during_validation_checkpoints_the_training_pass_and_resumes_exactly(tmp_path):
    straight = train(tmp_path / "straight", max_epochs=3)
    with pytest.raises(SystemExit) as stopped:
        train(tmp_path / "split", max_epochs=3, interrupt_at=(1, 1))
    assert stopped.value.code == 130
    run_dir = next(p for p in (tmp_path / "split").iterdir() if p.name != "sacred")
    assert read_json(sacred_run_dirs(tmp_path / "split" / "sacred")[0] / "run.json")["status"] == "INTERRUPTED"
    log = (run_dir / "log.txt").read_text().splitlines()
    assert "interrupted by SIGINT in epoch 1" in log[-3] and log[-1].endswith("INTERRUPTED")
    assert f"To resume: run(..., resume='{run_dir}')" in log[-2]  # Run(argv=...): not a script's own command line

    resumed = train(tmp_path / "split", max_epochs=3, resume=run_dir)
    assert_same_tensors(final_state(straight.run_dir)["model"], final_state(resumed.run_dir)["model"], "model")
    assert epoch_metrics(tmp_path / "straight") == epoch_metrics(tmp_path / "split")  # no epoch logged twice


def test_max_epochs_is_a_total(tmp_path):
    first = train(tmp_path, max_epochs=3)
    with pytest.warns(UserWarning, match="nothing left to train: epochs 0-2 are done and max_epochs=3 is the total"):
        again = train(tmp_path, max_epochs=3, resume=first.run_dir)
    assert "nothing left to train" in (first.run_dir / "log.txt").read_text()
    assert final_state(again.run_dir)["epoch"] == 2
    more = train(tmp_path, max_epochs=5, resume=first.run_dir / "checkpoints" / "latest.pt")
    assert final_state(more.run_dir)["epoch"] == 4
    assert sorted(epoch_metrics(tmp_path)["train.loss"]) == [0, 1, 2, 3, 4]


def test_resume_falls_back_to_the_newest_intact_checkpoint(tmp_path):
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(tmp_path, max_epochs=4, keep_last_epochs=2, checkpoint_every_n_steps=4, crash_at_step=35)
    run_dir = next(p for p in tmp_path.iterdir() if p.name != "sacred")
    latest = run_dir / "checkpoints" / "latest.pt"  # written at step 32, inside epoch 3
    latest.write_bytes(latest.read_bytes()[:1000])  # truncated, as by a bad copy
    with (
        pytest.warns(RuntimeWarning, match=r"could not use latest.pt: checkpoint .* is corrupt or truncated.*Resuming from .*epoch-2.pt"),
        pytest.warns(UserWarning, match=r"rewinding: epoch-2.pt \(global step 30\) is older than latest.pt"),
    ):
        resumed = train(tmp_path, max_epochs=4, keep_last_epochs=2, resume=run_dir)
    assert final_state(resumed.run_dir)["epoch"] == 3
    assert "resuming from " + str(run_dir / "checkpoints" / "epoch-2.pt") in (run_dir / "log.txt").read_text()


def test_resume_warns_about_every_config_difference(tmp_path):
    first = train(tmp_path, max_epochs=2)
    run = Run(name="exact", argv=["exact.py", "with", "seed=3"], random_seed=11, save_git_info=False)
    run.train_step(lambda batch, model: ((model(batch[0]) - batch[1]) ** 2).mean())
    run.validate_step(lambda batch, model: ((model(batch[0]) - batch[1]) ** 2).mean())

    @run.configure_optimizers
    def configure_optimizers(model):
        optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
        return optimizer, torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)

    with pytest.warns(UserWarning, match=r"differs from the config of the checkpoint it resumes from:\n  seed: 11 -> 3"):
        run(DropoutNet(), *loaders(0), max_epochs=3, use_gpu=False, save_path=tmp_path, resume=first.run_dir, progress=False)


@pytest.mark.parametrize(
    "setup, error, message",
    [
        ("missing", MissingFileError, "resume path '{path}' does not exist"),
        ("not blowtorch", CheckpointError, "is not a blowtorch checkpoint"),
        ("empty dir", CheckpointError, "holds no checkpoints"),
    ],
)
def test_bad_resume_paths(tmp_path, setup, error, message):
    path = tmp_path / "target"
    if setup == "not blowtorch":
        path = tmp_path / "weights.pt"
        torch.save({"state_dict": {}}, path)
    elif setup == "empty dir":
        path.mkdir()
    with pytest.raises(error) as caught:
        train(tmp_path / "runs", max_epochs=2, resume=path)
    assert message.format(path=path) in str(caught.value)


def test_checkpoint_that_does_not_fit_the_model_lists_every_difference(tmp_path):
    first = train(tmp_path, max_epochs=2)
    run = Run(name="exact", argv=["exact.py"], random_seed=11, save_git_info=False)
    run.train_step(lambda batch, model: ((model(batch[0]) - batch[1]) ** 2).mean())
    run.validate_step(lambda batch, model: ((model(batch[0]) - batch[1]) ** 2).mean())
    run.configure_optimizers(lambda model: torch.optim.AdamW(model.parameters()))
    other = nn.Sequential(nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 1)))
    before = directory_contents(tmp_path)
    with pytest.raises(CheckpointError) as caught:
        run(other, *loaders(0), max_epochs=3, use_gpu=False, save_path=tmp_path, resume=first.run_dir, progress=False)
    message = str(caught.value)
    assert "missing in the checkpoint (4): 0.0.weight, 0.0.bias, 0.3.weight, 0.3.bias" in message
    assert "unexpected in the checkpoint (4): layers.0.weight" in message
    # The failed resume changed nothing: not the run directory it names (its config.yaml is what the
    # message tells the user to read), and no new sacred record or run directory.
    assert directory_contents(tmp_path) == before


def directory_contents(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_different_number_of_optimizers_or_schedulers_is_explained(tmp_path):
    first = train(tmp_path, max_epochs=2)
    run = Run(name="exact", argv=["exact.py"], random_seed=11, save_git_info=False)
    run.train_step(lambda batch, model: ((model(batch[0]) - batch[1]) ** 2).mean())
    run.validate_step(lambda batch, model: ((model(batch[0]) - batch[1]) ** 2).mean())
    run.configure_optimizers(lambda model: torch.optim.AdamW(model.parameters()))  # no scheduler this time
    with pytest.raises(CheckpointError, match=r"holds 1 schedulers \['main'\], but configure_optimizers returned 0 \[\]"):
        run(DropoutNet(), *loaders(0), max_epochs=3, use_gpu=False, save_path=tmp_path, resume=first.run_dir, progress=False)


def test_a_relative_resume_path_is_recorded_as_an_absolute_one(tmp_path):
    first = train(Path("relative"), max_epochs=2)  # the tests run in tmp_path
    relative = Path("relative") / first.run_dir.name
    resumed = train(Path("relative"), max_epochs=3, resume=relative)
    assert resumed.run_dir.is_absolute() and resumed.run_dir == (tmp_path / relative).resolve()
    info = read_json(sacred_run_dirs(tmp_path / "relative" / "sacred")[-1] / "info.json")
    assert Path(info["run_dir"]).is_absolute() and Path(info["resumed_from"]["checkpoint"]).is_absolute()
    assert Path(info["resumed_from"]["checkpoint"]) == tmp_path / relative / "checkpoints" / "latest.pt"
