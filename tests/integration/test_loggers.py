"""The logger fan-out: TensorBoard and wandb files read back with their own readers, custom loggers, hooks."""

from __future__ import annotations

import math
import sys
import warnings

import pytest
import torch
from torch import nn

from blowtorch import BaseLogger, MissingExtraError, OptionError, Run
from blowtorch.loggers import TensorBoardLogger, WandbLogger
from tests.helpers import (
    assert_ok,
    read_json,
    regression_loaders,
    run_python,
    sacred_run_dirs,
    tensorboard_scalars,
    wandb_history,
    wandb_records,
    write_script,
)


def make_run(**kwargs) -> Run:
    run = Run(name="logs", argv=["logs.py"], random_seed=2, save_git_info=False)

    @run.train_step
    @run.validate_step
    def step(batch, model, epoch, is_validate):
        error = model(batch[0]) - batch[1]
        metrics = {"loss": (error**2).mean(), "mae": error.abs().mean()}
        if is_validate and kwargs.get("nan_val_epoch") == epoch:
            metrics["mae"] = metrics["mae"] * float("nan")
        return metrics

    @run.configure_optimizers
    def configure(model):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        return optimizer, torch.optim.lr_scheduler.StepLR(optimizer, 1, gamma=0.5)

    return run


def sacred_metrics(tmp_path, index=0):
    return read_json(sacred_run_dirs(tmp_path / "train_logs" / "sacred")[index] / "metrics.json")


def test_tensorboard_scalars_steps_and_config(tmp_path):
    run = make_run()
    run(nn.Linear(4, 1), *regression_loaders(), max_epochs=3, use_gpu=False, loggers=[TensorBoardLogger()], log_every_n_steps=3)
    scalars = tensorboard_scalars(run.run_dir / "tensorboard")
    sacred = sacred_metrics(tmp_path)
    assert set(scalars) == {
        "train/loss", "train/mae", "val/loss", "val/mae", "lr/main", "train_step/loss", "train_step/mae", "lr_step/main"
    }  # fmt: skip
    for tag, values in scalars.items():
        series = sacred[tag.replace("/", ".")]
        assert [step for step, _ in values] == series["steps"]
        assert [value for _, value in values] == pytest.approx(series["values"], rel=1e-6)  # float32 in event files
    assert [step for step, _ in scalars["val/loss"]] == [0, 1, 2]  # epochs
    assert [step for step, _ in scalars["train_step/loss"]] == [0, 3, 6, 9]  # global steps (4 batches per epoch)
    assert [value for _, value in scalars["lr/main"]] == pytest.approx([0.1, 0.1, 0.05])  # epoch 0 is the baseline: no decay yet

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(next((run.run_dir / "tensorboard").glob("events.*"))), size_guidance={"tensors": 0})
    events.Reload()
    config_text = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "seed: 2" in config_text
    hparams = {"_hparams_/experiment", "_hparams_/session_start_info", "_hparams_/session_end_info"}
    assert set(events.PluginTagToContent("hparams")) == hparams


def test_tensorboard_log_dir_and_resume_continue_the_same_series(tmp_path):
    first = make_run()
    first(nn.Linear(4, 1), *regression_loaders(), max_epochs=2, use_gpu=False, loggers=[TensorBoardLogger(log_dir=tmp_path / "tb")])
    resumed = make_run()
    resumed(nn.Linear(4, 1), *regression_loaders(), max_epochs=4, use_gpu=False, resume=first.run_dir,
            loggers=[TensorBoardLogger(log_dir=tmp_path / "tb")])  # fmt: skip
    scalars = tensorboard_scalars(tmp_path / "tb" / first.run_dir.name)
    assert [step for step, _ in scalars["train/loss"]] == [0, 1, 2, 3]  # each epoch once


def test_wandb_offline_run_holds_config_metrics_and_resumes_with_the_same_id(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    first = make_run()
    first(nn.Linear(4, 1), *regression_loaders(), max_epochs=2, use_gpu=False, log_every_n_steps=2,
          loggers=[WandbLogger(project="blowtorch-tests", tags=["test"])])  # fmt: skip
    resumed = make_run()
    resumed(nn.Linear(4, 1), *regression_loaders(), max_epochs=3, use_gpu=False, resume=first.run_dir,
            loggers=[WandbLogger(project="blowtorch-tests")])  # fmt: skip

    files = sorted((first.run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 2
    run_id = (first.run_dir / "wandb-run-id.txt").read_text().strip()
    assert all(f.name == f"run-{run_id}.wandb" for f in files)  # the resumed run is the same wandb run

    run_record = next(r.run for r in wandb_records(files[0]) if r.WhichOneof("record_type") == "run")
    assert run_record.display_name == first.run_dir.name and run_record.project == "blowtorch-tests"
    config = {item.key: item.value_json for item in run_record.config.update}
    assert config["seed"] == "2"

    first_rows, resumed_rows = wandb_history(files[0]), wandb_history(files[1])
    epochs = [row["epoch"] for rows in (first_rows, resumed_rows) for row in rows if "val/loss" in row]
    assert epochs == [0, 1, 2]
    assert [row["global_step"] for row in first_rows if "train_step/loss" in row] == [0, 2, 4, 6]
    for rows in (first_rows, resumed_rows):
        steps = [row["_step"] for row in rows]
        assert steps == sorted(steps) and len(set(steps)) == len(steps)  # wandb's own step only grows
    sacred = sacred_metrics(tmp_path)
    assert [row["val/loss"] for row in first_rows if "val/loss" in row] == sacred["val.loss"]["values"]


def test_wandb_runs_end_cleanly_with_their_output_captured_by_sacred(tmp_path):
    # sacred's default capture (fd) tees stdout/stderr through pipes; wandb's service process must not
    # keep them open, or sacred waits for the tee processes, kills them and warns on every run.
    # Two runs in one process: the second one reuses the process's wandb service.
    script = write_script(
        tmp_path,
        """
        import torch
        from blowtorch import Run
        from blowtorch.loggers import WandbLogger

        x = torch.randn(64, 4)
        data = list(zip(x.split(16), x.sum(dim=1, keepdim=True).split(16)))
        for name in ("first", "second"):
            run = Run(random_seed=1, name=name, save_git_info=False)

            @run.train_step
            @run.validate_step
            def step(batch, model):
                return (model(batch[0]) - batch[1]).pow(2).mean()

            @run.configure_optimizers
            def configure(model):
                return torch.optim.SGD(model.parameters(), lr=0.1)

            run(torch.nn.Linear(4, 1), data, data, max_epochs=2, use_gpu=False,
                loggers=[WandbLogger(mode="offline", project="blowtorch-tests")])
        """,
    )
    result = run_python(script, cwd=tmp_path)
    assert_ok(result)
    assert "tee_stdout" not in result.stderr and "tee_stderr" not in result.stderr and "Forcibly terminating" not in result.stderr

    sacred_dirs = sacred_run_dirs(tmp_path / "train_logs" / "sacred")
    assert len(sacred_dirs) == 2
    for sacred_dir in sacred_dirs:
        assert read_json(sacred_dir / "run.json")["status"] == "COMPLETED"
        cout = (sacred_dir / "cout.txt").read_text()
        assert "epoch 1 val   loss=" in cout and "wandb: Run summary:" in cout  # blowtorch's and wandb's output
    wandb_files = sorted((tmp_path / "train_logs").glob("*/wandb/offline-run-*/run-*.wandb"))
    assert len(wandb_files) == 2
    for wandb_file in wandb_files:
        assert [row["epoch"] for row in wandb_history(wandb_file) if "val/loss" in row] == [0, 1]


@pytest.mark.parametrize(
    "logger_class, package, extra", [(TensorBoardLogger, "tensorboard", "tensorboard"), (WandbLogger, "wandb", "wandb")]
)
def test_a_missing_package_names_the_extra_to_install(monkeypatch, logger_class, package, extra):
    for name in list(sys.modules):
        if name == package or name.startswith(f"{package}.") or name.startswith("torch.utils.tensorboard"):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, package, None)  # as if it were not installed
    with pytest.raises(MissingExtraError, match=rf"pip install 'blowtorch\[{extra}\]'"):
        logger_class()


class Recorder(BaseLogger):
    def __init__(self, fail_in=None):
        self.fail_in = fail_in
        self.events = []

    def on_start(self, run):
        self.events.append(("start", run.resumed))
        if self.fail_in == "on_start":
            raise ConnectionError("dashboard unreachable")

    def log_metrics(self, metrics, phase, epoch, step):
        self.events.append((phase, epoch, dict(metrics)))
        if self.fail_in == "log_metrics" and epoch == 1:
            raise ValueError("disk quota")

    def on_epoch_end(self, epoch, step):
        self.events.append(("epoch_end", epoch))

    def on_finish(self, status):
        self.events.append(("finish", status))


def test_a_logger_that_fails_mid_run_is_disabled_once_and_the_rest_go_on(tmp_path):
    broken, healthy = Recorder(fail_in="log_metrics"), Recorder()
    run = make_run()
    with pytest.warns(RuntimeWarning) as caught:
        run(nn.Linear(4, 1), *regression_loaders(), max_epochs=3, use_gpu=False, loggers=[broken, healthy])
    messages = [str(w.message) for w in caught if "Recorder" in str(w.message)]
    assert messages == ["logger Recorder raised in log_metrics and is disabled for the rest of this run (ValueError: disk quota); "
                        "training goes on and every other logger still receives everything"]  # fmt: skip
    assert broken.events[-1] == ("finish", "COMPLETED") and ("epoch_end", 2) not in broken.events
    assert [event[1] for event in healthy.events if event[0] == "val"] == [0, 1, 2]
    assert sacred_metrics(tmp_path)["val.loss"]["steps"] == [0, 1, 2]
    assert healthy.events[0] == ("start", False) and healthy.events[-1] == ("finish", "COMPLETED")


def test_a_logger_that_fails_at_start_stops_the_run_before_training(tmp_path):
    healthy = Recorder()
    run = make_run()
    with pytest.raises(OptionError, match="logger Recorder failed to start: ConnectionError: dashboard unreachable"):
        run(nn.Linear(4, 1), *regression_loaders(), max_epochs=3, use_gpu=False, loggers=[healthy, Recorder(fail_in="on_start")])
    assert healthy.events == [("start", False), ("finish", "FAILED")]
    log = (run.run_dir / "log.txt").read_text()
    assert "epoch 0 train" not in log and "failed before training: LoggerStartError: logger Recorder failed to start" in log
    lines = log.rstrip().splitlines()  # the error first, then the end: log.txt reads in order
    assert "failed before training" in lines[-2] and lines[-1].endswith("run ended: FAILED")
    assert read_json(sacred_run_dirs(tmp_path / "train_logs" / "sacred")[0] / "run.json")["status"] == "FAILED"


def test_loggers_must_be_base_loggers(tmp_path):
    run = make_run()
    with pytest.raises(OptionError, match="loggers must be blowtorch.loggers.BaseLogger instances, got str"):
        run(nn.Linear(4, 1), *regression_loaders(), max_epochs=2, use_gpu=False, loggers=["tensorboard"])


def test_non_finite_metrics_reach_every_sink_without_crashing_them(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    recorder = Recorder()
    run = make_run(nan_val_epoch=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no sink may fail (it would warn)
        run(nn.Linear(4, 1), *regression_loaders(), max_epochs=3, use_gpu=False,
            loggers=[recorder, TensorBoardLogger(), WandbLogger(project="nan")])  # fmt: skip
    assert math.isnan(sacred_metrics(tmp_path)["val.mae"]["values"][1])
    assert math.isnan(dict(tensorboard_scalars(run.run_dir / "tensorboard")["val/mae"])[1])
    rows = wandb_history(next((run.run_dir / "wandb").glob("offline-run-*/run-*.wandb")))
    assert math.isnan([row["val/mae"] for row in rows if "val/mae" in row][1])
    assert "epoch 1 val   loss=" in (run.run_dir / "log.txt").read_text() and "mae=nan" in (run.run_dir / "log.txt").read_text()


def test_hooks_fire_in_order_and_derived_metrics_flow_everywhere(tmp_path):
    run = make_run()
    calls = []

    @run.before_epoch
    def before(epoch, step):
        calls.append(("before", epoch, step))

    @run.after_train
    def after_train(metrics, epoch):
        calls.append(("after_train", epoch, sorted(metrics)))
        return {"rmse": math.sqrt(metrics["loss"])}

    @run.after_validate
    def after_validate(metrics, is_validate):
        calls.append(("after_validate", is_validate))
        metrics["half_mae"] = metrics["mae"] / 2  # changing the dict works as well

    @run.after_epoch
    def after(epoch, model):
        calls.append(("after", epoch, (run.run_dir / "checkpoints" / "latest.pt").is_file()))

    recorder = Recorder()
    summary = run(nn.Linear(4, 1), *regression_loaders(), max_epochs=2, use_gpu=False, loggers=[recorder], checkpoint_metric="val.half_mae")
    assert calls == [
        ("before", 0, 0), ("after_train", 0, ["loss", "mae"]), ("after_validate", True), ("after", 0, True),
        ("before", 1, 4), ("after_train", 1, ["loss", "mae"]), ("after_validate", True), ("after", 1, True),
    ]  # fmt: skip
    assert summary["checkpoint_metric"] == "val.half_mae"
    metrics = sacred_metrics(tmp_path)
    assert metrics["train.rmse"]["values"] == pytest.approx([math.sqrt(v) for v in metrics["train.loss"]["values"]])
    train_events = [event for event in recorder.events if event[0] == "train"]
    assert len(train_events) == 2 and all("rmse" in event[2] for event in train_events)


def test_log_every_n_steps_reaches_log_txt_and_sacred(tmp_path):
    run = make_run()
    run(nn.Linear(4, 1), *regression_loaders(), max_epochs=2, use_gpu=False, log_every_n_steps=2)
    metrics = sacred_metrics(tmp_path)
    assert metrics["train_step.loss"]["steps"] == [0, 2, 4, 6]
    assert metrics["lr_step.main"]["steps"] == [0, 2, 4, 6]
    assert "step 4 train_step loss=" in (run.run_dir / "log.txt").read_text()
