"""Training through the public API with real sacred runs, checked on disk."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import pytest
import torch
import yaml

from blowtorch import BaseLogger, NonFiniteLossError, OptionError, Run, UsageError
from tests.helpers import only_run_dir, read_json, regression_loaders, sacred_run_dirs


def new_run(*updates: str, flags: tuple[str, ...] = (), **kwargs) -> Run:
    argv = ["train.py", *flags, *(["with", *updates] if updates else [])]
    kwargs.setdefault("random_seed", 123)
    return Run(name="test", argv=argv, save_git_info=False, **kwargs)


def add_regression_steps(run: Run, lr: float = 0.05) -> None:
    @run.train_step
    @run.validate_step
    def step(batch, model):
        x, y = batch
        error = model(x) - y
        return {"loss": error**2, "mae": error.abs()}

    @run.configure_optimizers
    def configure_optimizers(model):
        return torch.optim.SGD(model.parameters(), lr=lr)


def test_a_run_writes_its_directory_and_its_sacred_record(tmp_path):
    run = new_run()
    add_regression_steps(run)
    train_loader, val_loader = regression_loaders()
    summary = run(torch.nn.Linear(4, 1), train_loader, val_loader, max_epochs=3, use_gpu=False)

    run_dir = only_run_dir(tmp_path / "train_logs")
    assert run.run_dir == run_dir
    assert run_dir.name.endswith("-1")  # the sacred file storage id
    assert {p.name for p in run_dir.iterdir()} == {
        "config.yaml", "log.txt", "model-summary.txt", "source.txt", "status.json", "checkpoints",
    }  # fmt: skip
    assert read_json(run_dir / "status.json")["status"] == "COMPLETED"
    assert yaml.safe_load((run_dir / "config.yaml").read_text()) == {"seed": 123}

    log = (run_dir / "log.txt").read_text().splitlines()
    assert "started: experiment 'test', sacred run 1, seed 123, device cpu" in log[0]
    for epoch in range(3):
        assert any(f"epoch {epoch} train loss=" in line and "mae=" in line for line in log)
        assert any(f"epoch {epoch} val   loss=" in line for line in log)
    assert log[-1].endswith("run ended: COMPLETED")

    summary_text = (run_dir / "model-summary.txt").read_text()
    assert "Total parameters:         5" in summary_text and "Trainable parameters:     5" in summary_text
    assert "weight(1, 4)" in summary_text
    source = (run_dir / "source.txt").read_text()
    assert "def step(batch, model):" in source and "def configure_optimizers(model):" in source
    assert "defined by the installed package 'torch'" in source

    best = torch.load(run_dir / "checkpoints" / "best.pt", weights_only=True)
    latest = torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=True)
    assert latest["epoch"] == 2 and set(latest["model"]) == {"weight", "bias"}
    assert best["epoch"] == summary["best_epoch"]
    assert best["metrics"]["val.loss"] == summary["best_value"]

    sacred_dir = sacred_run_dirs(tmp_path / "train_logs" / "sacred")[0]
    assert read_json(sacred_dir / "run.json")["status"] == "COMPLETED"
    assert read_json(sacred_dir / "info.json")["run_dir"] == str(run_dir)
    metrics = read_json(sacred_dir / "metrics.json")
    assert set(metrics) == {"train.loss", "train.mae", "val.loss", "val.mae", "lr.main"}
    assert metrics["lr.main"]["values"] == [0.05, 0.05, 0.05]
    assert metrics["val.loss"]["steps"] == [0, 1, 2]
    assert metrics["val.loss"]["values"][2] == latest["metrics"]["val.loss"]
    assert all(isinstance(v, float) for v in metrics["train.loss"]["values"])


def test_epoch_step_and_phase_arguments():
    run = new_run()
    calls = []

    @run.train_step
    @run.validate_step
    def step(batch, model, epoch, step, batch_index, is_validate, device):
        calls.append((epoch, step, batch_index, is_validate, str(device)))
        return ((model(batch[0]) - batch[1]) ** 2).mean()

    @run.configure_optimizers
    def configure(model):
        return torch.optim.SGD(model.parameters(), lr=0.01)

    train_loader, val_loader = regression_loaders(samples=64, batch_size=16)  # 4 train, 2 val batches
    run(torch.nn.Linear(4, 1), train_loader, val_loader, max_epochs=2, use_gpu=False)
    assert calls == [
        (0, 0, 0, False, "cpu"), (0, 1, 1, False, "cpu"), (0, 2, 2, False, "cpu"), (0, 3, 3, False, "cpu"),
        (0, 4, 0, True, "cpu"), (0, 4, 1, True, "cpu"),
        (1, 4, 0, False, "cpu"), (1, 5, 1, False, "cpu"), (1, 6, 2, False, "cpu"), (1, 7, 3, False, "cpu"),
        (1, 8, 0, True, "cpu"), (1, 8, 1, True, "cpu"),
    ]  # fmt: skip


@pytest.mark.parametrize("optimize_first", [False, True])
def test_epoch_zero_is_a_baseline_unless_optimize_first(optimize_first):
    run = new_run()
    add_regression_steps(run)
    model = torch.nn.Linear(4, 1)
    before = model.weight.detach().clone()
    train_loader, _ = regression_loaders()
    if optimize_first:
        run(model, train_loader, max_epochs=1, use_gpu=False, optimize_first=True)
    else:
        with pytest.warns(UserWarning, match="runs only the baseline epoch 0"):
            run(model, train_loader, max_epochs=1, use_gpu=False)
    assert torch.equal(model.weight, before) != optimize_first


def test_best_checkpoint_is_the_best_of_the_whole_run(tmp_path):
    run = new_run()

    @run.train_step
    def train(batch, model):
        return ((model(batch[0]) - batch[1]) ** 2).mean()

    @run.validate_step
    def validate(batch, model, epoch):
        return {"score": torch.tensor(float([3.0, 1.0, 2.0, 5.0][epoch]))}

    @run.configure_optimizers
    def configure(model):
        return torch.optim.SGD(model.parameters(), lr=0.01)

    train_loader, val_loader = regression_loaders()
    summary = run(torch.nn.Linear(4, 1), train_loader, val_loader, max_epochs=4, use_gpu=False)
    assert (summary["checkpoint_metric"], summary["best_epoch"], summary["best_value"]) == ("val.score", 1, 1.0)
    checkpoints = run.run_dir / "checkpoints"
    assert torch.load(checkpoints / "best.pt", weights_only=True)["epoch"] == 1
    assert torch.load(checkpoints / "latest.pt", weights_only=True)["epoch"] == 3


def test_larger_is_better_and_explicit_phase_prefixes(tmp_path):
    run = new_run()
    add_regression_steps(run)
    train_loader, val_loader = regression_loaders()
    summary = run(
        torch.nn.Linear(4, 1), train_loader, val_loader, max_epochs=3, use_gpu=False,
        checkpoint_metric="train.mae", smaller_is_better=False, optimize_metric="train.loss",
    )  # fmt: skip
    maes = read_json(sacred_run_dirs(tmp_path / "train_logs" / "sacred")[0] / "metrics.json")["train.mae"]["values"]
    assert summary["checkpoint_metric"] == "train.mae"
    assert summary["best_value"] == max(maes) and summary["best_epoch"] == maes.index(max(maes))
    best = torch.load(run.run_dir / "checkpoints" / "best.pt", weights_only=True)
    assert best["metrics"]["train.mae"] == max(maes)


def test_without_validation_the_checkpoint_metric_comes_from_training():
    run = new_run()
    add_regression_steps(run)
    train_loader, _ = regression_loaders()
    summary = run.run(torch.nn.Linear(4, 1), train_loader, None, max_epochs=2, use_gpu=False, checkpoint_metric="mae")
    assert summary["checkpoint_metric"] == "train.mae"
    assert summary["metrics"].keys() == {"train"} and set(summary["metrics"]["train"]) == {"loss", "mae"}


def test_epoch_schedulers_step_after_each_optimizing_epoch_and_are_checkpointed(tmp_path):
    run = new_run()

    @run.train_step
    @run.validate_step
    def step(batch, model):
        return ((model(batch[0]) - batch[1]) ** 2).mean()

    optimizers = []

    @run.configure_optimizers
    def configure(model):
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        optimizers.append(optimizer)
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, patience=100)
        return optimizer, {"decay": torch.optim.lr_scheduler.StepLR(optimizer, 1, gamma=0.5), "plateau": plateau}

    train_loader, val_loader = regression_loaders()
    run(torch.nn.Linear(4, 1), train_loader, val_loader, max_epochs=4, use_gpu=False)
    assert optimizers[0].param_groups[0]["lr"] == pytest.approx(0.125)  # epochs 1, 2, 3 optimized; 0 is the baseline
    latest = torch.load(run.run_dir / "checkpoints" / "latest.pt", weights_only=True)
    assert latest["schedulers"]["decay"]["last_epoch"] == 3
    # ReduceLROnPlateau saw the checkpoint metric (val.loss) of the optimizing epochs 1-3, not epoch 0
    val_losses = read_json(sacred_run_dirs(tmp_path / "train_logs" / "sacred")[0] / "metrics.json")["val.loss"]["values"]
    assert latest["schedulers"]["plateau"]["best"] == min(val_losses[1:])


def test_a_nan_loss_stops_the_run_naming_epoch_and_step(tmp_path):
    run = new_run()

    @run.train_step
    def step(batch, model, step):
        loss = ((model(batch[0]) - batch[1]) ** 2).mean()
        return loss * float("nan") if step == 6 else loss

    @run.configure_optimizers
    def configure(model):
        return torch.optim.SGD(model.parameters(), lr=0.01)

    train_loader, _ = regression_loaders(samples=64, batch_size=16)
    with pytest.raises(NonFiniteLossError, match="became NaN or infinite in epoch 1, first at global step 6 \\(batch 2 of the epoch\\)"):
        run(torch.nn.Linear(4, 1), train_loader, max_epochs=3, use_gpu=False)
    latest = torch.load(run.run_dir / "checkpoints" / "latest.pt", weights_only=True)
    assert latest["epoch"] == 0
    assert all(torch.isfinite(t).all() for t in latest["model"].values())
    run_json = read_json(sacred_run_dirs(tmp_path / "train_logs" / "sacred")[0] / "run.json")
    assert run_json["status"] == "FAILED"
    assert "NonFiniteLossError" in "".join(run_json["fail_trace"])
    log = (run.run_dir / "log.txt").read_text()
    assert "epoch 1 train loss=nan" in log and "failed in epoch 1" in log and log.rstrip().endswith("run ended: FAILED")


def _bad(kind):
    """A run set up with one thing wrong, the call that trains it, and the expected error."""
    train_loader, val_loader = regression_loaders()
    model = torch.nn.Linear(4, 1)
    run = new_run()
    train = dict(max_epochs=2, use_gpu=False)

    def step_returning(value):
        @run.train_step
        def step(batch, model):
            return value

    def good_optimizers():
        @run.configure_optimizers
        def configure(model):
            return torch.optim.SGD(model.parameters(), lr=0.1)

    if kind == "no train_step":
        good_optimizers()
        return run, lambda: run(model, train_loader, **train), UsageError, "no training step is registered"
    add = kind not in ("returns None", "returns a string", "bad dict value", "bad optimizers")
    if add:
        add_regression_steps(run)
    if kind == "returns None":
        step_returning(None); good_optimizers()  # noqa: E702
        return run, lambda: run(model, train_loader, **train), UsageError, "train_step returned None (did you forget 'return'?)"
    if kind == "returns a string":
        step_returning("0.5"); good_optimizers()  # noqa: E702
        return run, lambda: run(model, train_loader, **train), UsageError, "train_step returned a str"
    if kind == "bad dict value":
        step_returning({"loss": torch.tensor(1.0, requires_grad=True), "note": "fine"}); good_optimizers()  # noqa: E702
        return run, lambda: run(model, train_loader, **train), UsageError, "returned a str ('fine') for 'note'"
    if kind == "bad optimizers":
        step_returning(torch.tensor(1.0))

        @run.configure_optimizers
        def configure(model):
            return {"adam": "not an optimizer"}

        return run, lambda: run(model, train_loader, **train), UsageError, "returned str as optimizer 'adam'"
    if kind == "unknown optimize_metric":
        return run, lambda: run(model, train_loader, optimize_metric="acc", **train), OptionError, (
            "optimize_metric 'acc' is not among the training metrics ['loss', 'mae']; pass one of those"
        )
    if kind == "unknown checkpoint_metric":
        return run, lambda: run(model, train_loader, val_loader, checkpoint_metric="val.acc", **train), OptionError, (
            "checkpoint_metric 'val.acc' is not among the validation metrics ['loss', 'mae']"
        )
    if kind == "not a module":
        return run, lambda: run(lambda x: x, train_loader, **train), UsageError, "model must be a torch.nn.Module, got function"
    if kind == "empty loader":
        empty = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.zeros(0, 4)), batch_size=2)
        return run, lambda: run(model, empty, **train), OptionError, "train_loader is empty (len 0)"
    if kind == "val_loader without validate_step":
        run2 = new_run()

        @run2.train_step
        def step(batch, model):
            return model(batch[0]).mean()

        @run2.configure_optimizers
        def configure(model):
            return torch.optim.SGD(model.parameters(), lr=0.1)

        return run2, lambda: run2(model, train_loader, val_loader, **train), UsageError, "no @run.validate_step is registered"
    if kind == "one-shot generator":
        batches = (batch for batch in train_loader)
        return run, lambda: run(model, batches, **train), OptionError, (
            "train_loader is a generator, which can be iterated only once, but it is read every epoch"
        )
    if kind == "validation metric without val_loader":
        return run, lambda: run(model, train_loader, checkpoint_metric="val.mae", **train), OptionError, (
            "checkpoint_metric 'val.mae' is a validation metric, but run(...) was given no val_loader; pass a "
            "val_loader, or a training metric such as 'train.mae'"
        )
    if kind == "monitor without val_loader":
        run3 = new_run()
        run3.train_step(lambda batch, model: ((model(batch[0]) - batch[1]) ** 2).mean())

        @run3.configure_optimizers
        def plateau(model):
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            return optimizer, {"scheduler": torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer), "monitor": "val.loss"}

        return run3, lambda: run3(model, train_loader, **train), OptionError, "monitor 'val.loss' is a validation metric"
    if kind == "max_epochs":
        return run, lambda: run(model, train_loader, max_epochs=0, use_gpu=False), OptionError, "max_epochs must be an int >= 1"
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    [
        "no train_step", "bad optimizers", "not a module", "empty loader", "val_loader without validate_step", "max_epochs",
        "one-shot generator", "validation metric without val_loader", "monitor without val_loader",
    ],
)  # fmt: skip
def test_bad_input_fails_before_the_run_is_recorded(tmp_path, kind):
    """What can be checked before training is checked before sacred records a run: no FAILED run in
    the database, no run directory in save_path, and no save_path either."""
    run, call, error_type, message = _bad(kind)
    with pytest.raises(error_type) as caught:
        call()
    assert message in str(caught.value)
    assert run.run_dir is None
    assert not (tmp_path / "train_logs").exists()


@pytest.mark.parametrize(
    "kind", ["returns None", "returns a string", "bad dict value", "unknown optimize_metric", "unknown checkpoint_metric"]
)
def test_bad_input_found_while_training_is_explained_and_recorded(tmp_path, kind):
    run, call, error_type, message = _bad(kind)
    with pytest.raises(error_type) as caught:
        call()
    assert message in str(caught.value)
    log = (run.run_dir / "log.txt").read_text()
    assert message in log and log.rstrip().endswith("run ended: FAILED")
    run_json = read_json(sacred_run_dirs(tmp_path / "train_logs" / "sacred")[0] / "run.json")
    assert run_json["status"] == "FAILED" and message in "".join(run_json["fail_trace"])


@pytest.mark.parametrize(
    "kind, cause",
    [
        ("a file", "is a file, not a directory"),
        ("inside a file", "is a file, not a directory"),
        ("/proc", "cannot hold run directories: No such file or directory"),
        ("read-only", "cannot hold run directories: Permission denied"),
    ],
)
def test_a_save_path_that_cannot_hold_runs_is_one_clear_error_before_anything_is_recorded(tmp_path, kind, cause):
    (tmp_path / "notes.txt").write_text("not a directory")
    read_only = tmp_path / "shared"
    read_only.mkdir(mode=0o555)
    if kind == "read-only" and os.access(read_only, os.W_OK):
        pytest.skip("the tests run as root, who can write anywhere")
    save_path = {
        "a file": tmp_path / "notes.txt",
        "inside a file": tmp_path / "notes.txt" / "runs",
        "/proc": Path("/proc/blowtorch-runs"),
        "read-only": read_only / "runs",
    }[kind]
    run = new_run(flags=("-F", str(tmp_path / "observed")))
    add_regression_steps(run)
    with pytest.raises(OptionError) as caught:
        run(torch.nn.Linear(4, 1), regression_loaders()[0], max_epochs=2, use_gpu=False, save_path=save_path)
    message = str(caught.value)
    assert message.startswith(f"save_path '{save_path}' cannot hold run directories") and cause in message
    assert "Pass " in message  # and says what to do
    error = caught.value  # one error, not the OSError and then this one
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)
    assert not (tmp_path / "observed").exists()  # no sacred record
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "shared"]


def test_a_run_object_trains_once():
    run = new_run()
    add_regression_steps(run)
    train_loader, _ = regression_loaders()
    run(torch.nn.Linear(4, 1), train_loader, max_epochs=2, use_gpu=False)
    with pytest.raises(UsageError, match="already trained once"):
        run(torch.nn.Linear(4, 1), train_loader, max_epochs=2, use_gpu=False)


def test_metrics_stay_finite_floats_even_with_python_numbers():
    run = new_run()

    @run.train_step
    def step(batch, model):
        return {"loss": ((model(batch[0]) - batch[1]) ** 2).mean(), "constant": 2, "ratio": 0.25}

    @run.configure_optimizers
    def configure(model):
        return torch.optim.SGD(model.parameters(), lr=0.01)

    train_loader, _ = regression_loaders()
    summary = run(torch.nn.Linear(4, 1), train_loader, max_epochs=2, use_gpu=False)
    assert summary["metrics"]["train"]["constant"] == 2.0 and summary["metrics"]["train"]["ratio"] == 0.25
    assert not math.isnan(summary["metrics"]["train"]["loss"])


class Recording(BaseLogger):
    def __init__(self) -> None:
        self.phases: list[tuple[str, int]] = []

    def log_metrics(self, metrics, phase, epoch, step):
        self.phases.append((phase, epoch))


def test_options_can_be_given_by_position_in_the_seed_readmes_order_and_loggers_to_the_run(tmp_path):
    from_run, from_call = Recording(), Recording()
    run = new_run(loggers=[from_run])
    add_regression_steps(run)
    train_loader, val_loader = regression_loaders()
    # model, train_loader, val_loader, loggers, max_epochs, use_gpu, gpu_id, resume, save_path, run_name,
    # optimize_metric, checkpoint_metric, smaller_is_better, optimize_first, detect_anomalies
    result = run(
        torch.nn.Linear(4, 1), train_loader, val_loader, [from_call], 2, False, 0, None, tmp_path / "runs", "positional",
        "loss", "val.mae", True, True, False,
    )  # fmt: skip
    assert result["epochs"] == 2 and result["checkpoint_metric"] == "val.mae"
    assert "-positional-" in Path(result["run_dir"]).name and Path(result["run_dir"]).parent == tmp_path / "runs"
    assert from_run.phases == from_call.phases == [("train", 0), ("lr", 0), ("val", 0), ("train", 1), ("lr", 1), ("val", 1)]
    with pytest.raises(TypeError):  # blowtorch's own options come by name only
        run(torch.nn.Linear(4, 1), train_loader, val_loader, None, 2, False, 0, None, "x", None, None, None, True, True, False, 5)


@pytest.mark.parametrize("loggers", [Recording(), ["not a logger"]])
def test_run_loggers_that_are_not_loggers_are_refused_when_the_run_is_made(loggers):
    with pytest.raises(OptionError, match=r"Run\(loggers=...\)"):
        new_run(loggers=loggers)


class FailingLogger(BaseLogger):
    def log_metrics(self, metrics, phase, epoch, step):
        raise ConnectionError("the dashboard is down")


def test_blowtorchs_warnings_point_at_the_users_line():
    run = new_run()
    add_regression_steps(run)
    train_loader, _ = regression_loaders()
    with pytest.warns(RuntimeWarning, match="logger FailingLogger raised in log_metrics and is disabled") as caught:
        line = sys._getframe().f_lineno + 1
        run(torch.nn.Linear(4, 1), train_loader, max_epochs=2, use_gpu=False, loggers=[FailingLogger()])
    disabled = next(w for w in caught if "FailingLogger" in str(w.message))
    assert (disabled.filename, disabled.lineno) == (__file__, line)  # not blowtorch/loggers/fanout.py
