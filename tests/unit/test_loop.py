"""The loop alone: `fit` driven with a recording logger and a list that collects checkpoints.

No sacred, no files, no subprocesses: each test runs in milliseconds. Loop behaviour that does not
need a real run (hook order, metric means, schedulers, stop requests, the in-epoch replay) is
tested here; tests of new loop features belong here too.
"""

from __future__ import annotations

import copy
import signal
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from blowtorch import NonFiniteLossError, OptionError, UsageError
from blowtorch.hooks import HookRegistry
from blowtorch.interrupt import Interrupted
from blowtorch.loggers.base import BaseLogger, RunInfo
from blowtorch.loggers.fanout import LoggerFanout
from blowtorch.loggers.progress import Progress
from blowtorch.loop import Trainee, fit
from blowtorch.optim import parse_optimizers
from blowtorch.options import RunOptions
from blowtorch.resume import Resumption
from blowtorch.state import EpochPosition, TrainState


class RecordingLogger(BaseLogger):
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def log_metrics(self, metrics, phase, epoch, step):
        self.events.append(("metrics", phase, epoch, step, dict(metrics)))

    def on_epoch_end(self, epoch, step):
        self.events.append(("epoch_end", epoch, step))

    def metrics(self, phase: str) -> list[dict[str, float]]:
        return [event[4] for event in self.events if event[0] == "metrics" and event[1] == phase]


@dataclass
class Saved:
    """One checkpoint as the loop asked for it, with copies of what a real writer would store."""

    state: TrainState
    rng: dict[str, Any]
    position: EpochPosition | None
    is_best: bool
    model: dict[str, torch.Tensor]
    optimizers: dict[str, Any]


@dataclass
class Harness:
    trainee: Trainee
    logger: RecordingLogger
    saved: list[Saved] = field(default_factory=list)


def loaders(samples: int = 20, batch_size: int = 4, validation: bool = True, seed: int = 0):
    x = torch.randn(samples, 3, generator=torch.Generator().manual_seed(seed))
    y = x.sum(dim=1, keepdim=True)
    train = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed))
    val = DataLoader(TensorDataset(x[:10], y[:10]), batch_size=4) if validation else None
    return train, val


def mse_step(batch, model):
    x, y = batch
    return {"loss": ((model(x) - y) ** 2).mean(), "size": torch.tensor(float(x.shape[0]))}


def harness(
    model: torch.nn.Module | None = None,
    *,
    hooks: HookRegistry | None = None,
    schedulers: Any = None,
    data: tuple[Any, Any] | None = None,
    **options: Any,
) -> Harness:
    model = model if model is not None else torch.nn.Linear(3, 1)
    if hooks is None:
        hooks = HookRegistry()
        hooks.register("train_step", mse_step)
        hooks.register("validate_step", mse_step)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    optimizers = parse_optimizers(optimizer if schedulers is None else (optimizer, schedulers(optimizer)))
    train_loader, val_loader = data if data is not None else loaders()
    logger = RecordingLogger()
    fanout = LoggerFanout([logger])
    fanout.on_start(RunInfo(Path("unused"), "test", {}, model, torch.device("cpu"), None, "test"))
    saved: list[Saved] = []

    def save_checkpoint(state, rng, *, position=None, is_best=False):
        saved.append(
            Saved(
                copy.deepcopy(state), copy.deepcopy(rng), copy.deepcopy(position), is_best,
                copy.deepcopy(model.state_dict()), copy.deepcopy(optimizers.state_dict()),
            )
        )  # fmt: skip

    trainee = Trainee(
        model=model,
        train_loader=train_loader,
        val_loader=val_loader,
        hooks=hooks,
        optimizers=optimizers,
        device=torch.device("cpu"),
        options=RunOptions(**{"optimize_first": True, "max_epochs": 3, **options}),
        loggers=fanout,
        progress=Progress(enabled=False),
        save_checkpoint=save_checkpoint,
    )
    return Harness(trainee, logger, saved)


def test_hooks_and_logger_events_come_in_order():
    calls: list[tuple[Any, ...]] = []
    hooks = HookRegistry()
    hooks.register("before_epoch", lambda epoch: calls.append(("before_epoch", epoch)))
    hooks.register("train_step", lambda batch, model, batch_index: calls.append(("train_step", batch_index)) or mse_step(batch, model))
    hooks.register("after_train", lambda metrics: calls.append(("after_train", sorted(metrics))))
    hooks.register(
        "validate_step", lambda batch, model, batch_index: calls.append(("validate_step", batch_index)) or mse_step(batch, model)
    )
    hooks.register("after_validate", lambda metrics, epoch: calls.append(("after_validate", epoch)) or {"double": 2 * metrics["loss"]})
    hooks.register("after_epoch", lambda epoch: calls.append(("after_epoch", epoch)))
    run = harness(hooks=hooks, max_epochs=2)
    fit(run.trainee, TrainState())
    epoch = [("before_epoch", 0), *[("train_step", i) for i in range(5)], ("after_train", ["loss", "size"]),
             *[("validate_step", i) for i in range(3)], ("after_validate", 0), ("after_epoch", 0)]  # fmt: skip
    assert calls[: len(epoch)] == epoch and len(calls) == 2 * len(epoch)
    phases = [(e[0], e[1]) if e[0] == "metrics" else (e[0],) for e in run.logger.events]
    assert phases == [("metrics", "train"), ("metrics", "lr"), ("metrics", "val"), ("epoch_end",)] * 2
    assert run.logger.metrics("val")[0]["double"] == pytest.approx(2 * run.logger.metrics("val")[0]["loss"])
    assert [s.position for s in run.saved] == [None, None]  # one epoch-end checkpoint per epoch


def test_epoch_means_are_weighted_by_batch_size():
    x = torch.arange(10, dtype=torch.float32).unsqueeze(1)  # batches of 4, 4 and 2
    train = DataLoader(TensorDataset(x, x), batch_size=4)
    hooks = HookRegistry()
    hooks.register("train_step", lambda batch, model: {"loss": model(batch[0]).sum() * 0, "value": batch[0].mean()})
    run = harness(torch.nn.Linear(1, 1), hooks=hooks, data=(train, None), max_epochs=1)
    fit(run.trainee, TrainState())
    assert run.logger.metrics("train")[0]["value"] == pytest.approx(4.5)  # not (1.5 + 5.5 + 8.5) / 3
    assert run.logger.metrics("train")[0]["loss"] == 0.0


def test_baseline_epoch_does_not_update_and_schedulers_step_only_after_optimizing_epochs():
    model = torch.nn.Linear(3, 1)
    before = copy.deepcopy(model.state_dict())
    run = harness(model, schedulers=lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5),
                  optimize_first=False, max_epochs=3)  # fmt: skip
    fit(run.trainee, TrainState(), None)
    assert all(torch.equal(run.saved[0].model[k], before[k]) for k in before)  # epoch 0 is a baseline
    assert [m["main"] for m in run.logger.metrics("lr")] == [0.05, 0.05, 0.025]  # logged before stepping


def test_per_step_schedulers_step_after_every_optimizer_step():
    run = harness(schedulers=lambda opt: {"scheduler": torch.optim.lr_scheduler.StepLR(opt, 1, gamma=0.9), "interval": "step"},
                  max_epochs=2)  # fmt: skip
    fit(run.trainee, TrainState())
    assert run.logger.metrics("lr")[-1]["main"] == pytest.approx(0.05 * 0.9**10)


def test_a_stop_request_checkpoints_the_step_and_raises_interrupted():
    hooks = HookRegistry()
    stop_at = 7

    def step(batch, model, step):
        if step == stop_at:
            run.trainee.stop.signal_number = signal.SIGTERM  # as the signal handler would
        return mse_step(batch, model)

    hooks.register("train_step", step)
    run = harness(hooks=hooks, data=loaders(validation=False))
    with pytest.raises(Interrupted) as caught:
        fit(run.trainee, TrainState())
    assert caught.value.exit_code == 143
    last = run.saved[-1]
    assert last.state.epoch == 1 and last.state.global_step == stop_at + 1
    assert last.position is not None and last.position.batches_done == 3  # 5 batches per epoch


def test_a_non_finite_loss_stops_the_run_naming_the_step():
    hooks = HookRegistry()
    hooks.register("train_step", lambda batch, model, step: mse_step(batch, model)["loss"] * (float("nan") if step == 6 else 1.0))
    run = harness(hooks=hooks, data=loaders(validation=False))
    with pytest.raises(NonFiniteLossError, match="in epoch 1, first at global step 6"):
        fit(run.trainee, TrainState())
    assert len(run.saved) == 1  # epoch 0's only


@pytest.mark.parametrize("stop_after_steps", [3, 5, 12])  # inside epoch 0, at its last batch, inside epoch 2
def test_replaying_an_epoch_from_an_in_epoch_checkpoint_is_bit_exact(stop_after_steps):
    def model() -> torch.nn.Module:
        torch.manual_seed(1)
        return torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Dropout(0.3), torch.nn.Linear(8, 1))

    def stopping_step(batch, model, step):
        if step == stop_after_steps - 1:
            first.trainee.stop.signal_number = signal.SIGINT  # as the signal handler would
        return mse_step(batch, model)

    straight = harness(model())
    fit(straight.trainee, TrainState())

    hooks = HookRegistry()
    hooks.register("train_step", stopping_step)
    hooks.register("validate_step", mse_step)
    first = harness(model(), hooks=hooks)
    with pytest.raises(Interrupted):
        fit(first.trainee, TrainState())
    checkpoint = first.saved[-1]
    assert checkpoint.position is not None and checkpoint.state.global_step == stop_after_steps

    second = harness(torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Dropout(0.3), torch.nn.Linear(8, 1)))
    second.trainee.model.load_state_dict(checkpoint.model)
    second.trainee.optimizers.optimizers["main"].load_state_dict(checkpoint.optimizers["optimizers"]["main"])
    torch.manual_seed(999)  # whatever random state the resuming process is in
    fit(second.trainee, copy.deepcopy(checkpoint.state), Resumption(checkpoint.rng, checkpoint.position))

    for key, value in straight.trainee.model.state_dict().items():
        assert torch.equal(value, second.trainee.model.state_dict()[key]), key
    resumed_epochs = straight.logger.metrics("train")[checkpoint.state.epoch :]
    assert second.logger.metrics("train") == resumed_epochs  # the replayed epoch's means included


def test_the_baseline_epoch_finds_a_loss_that_cannot_be_back_propagated_at_its_first_step():
    steps: list[int] = []
    hooks = HookRegistry()
    hooks.register("train_step", lambda batch, model, step: steps.append(step) or mse_step(batch, model)["loss"].detach())
    run = harness(hooks=hooks, data=loaders(validation=False), optimize_first=False)
    with pytest.raises(UsageError, match="the optimized metric 'loss' returned by train_step does not require grad"):
        fit(run.trainee, TrainState())
    assert steps == [0]


def batchnorm_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 1))


@pytest.mark.parametrize("checkpoint_every_n_steps", [None, 2])
def test_the_baseline_epoch_leaves_batchnorm_statistics_as_it_found_them(checkpoint_every_n_steps):
    model = batchnorm_model()
    before = copy.deepcopy(model.state_dict())
    run = harness(model, optimize_first=False, max_epochs=1, checkpoint_every_n_steps=checkpoint_every_n_steps)
    fit(run.trainee, TrainState())
    for saved in [*run.saved, Saved(TrainState(), {}, None, False, model.state_dict(), {})]:  # and the model itself
        for key, value in before.items():
            assert torch.equal(saved.model[key], value), key
    assert len(run.saved) == (3 if checkpoint_every_n_steps else 1)
    trained = harness(batchnorm_model(), optimize_first=True, max_epochs=1)  # an optimizing epoch does update them
    fit(trained.trainee, TrainState())
    assert not torch.equal(trained.trainee.model.state_dict()["1.running_mean"], before["1.running_mean"])


@pytest.mark.parametrize("misnamed", ["checkpoint_metric", "monitor"])
def test_a_misnamed_metric_fails_at_the_end_of_the_baseline_epoch(misnamed):
    schedulers = None
    if misnamed == "monitor":
        schedulers = lambda opt: {"scheduler": torch.optim.lr_scheduler.ReduceLROnPlateau(opt), "monitor": "val.acc"}  # noqa: E731
    options = {"checkpoint_metric": "val.acc"} if misnamed == "checkpoint_metric" else {}
    run = harness(schedulers=schedulers, optimize_first=False, **options)
    with pytest.raises(OptionError, match=rf"{misnamed} 'val.acc' is not among the validation metrics \['loss', 'size'\]"):
        fit(run.trainee, TrainState())
    assert [phase for _, phase, *_ in run.logger.events] == ["train", "lr", "val"]  # epoch 0 only
    assert run.saved == []  # the baseline trained nothing worth keeping


def test_a_misnamed_metric_after_an_optimizing_epoch_keeps_its_training_in_a_checkpoint():
    run = harness(optimize_first=True, checkpoint_metric="accuracy")
    with pytest.raises(OptionError, match="The training of epoch 0 is kept in checkpoints/latest.pt"):
        fit(run.trainee, TrainState())
    kept = run.saved[-1]
    assert kept.position is not None and kept.position.train_metrics is not None  # resumes with validation
    assert kept.state.global_step == 5 and kept.position.batches_done == 5


def test_a_non_finite_loss_is_noticed_within_about_a_second_not_at_the_end_of_the_epoch():
    steps: list[int] = []

    def step(batch, model, step):
        steps.append(step)
        time.sleep(0.005)  # 2,000 steps of 5 ms: the epoch would end after about 10 s
        return mse_step(batch, model)["loss"] * (float("nan") if step >= 3 else 1.0)

    hooks = HookRegistry()
    hooks.register("train_step", step)
    x = torch.randn(2000, 3)
    run = harness(hooks=hooks, data=(DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=1), None))
    with pytest.raises(NonFiniteLossError, match="in epoch 0, first at global step 3"):
        fit(run.trainee, TrainState())
    assert len(steps) < 1000  # read about once a second, not only when the 2,000 steps are done


def test_resuming_after_the_last_training_batch_gives_no_scheduler_warning():
    def stopping_step(batch, model, step):
        if step == 4:  # the last of epoch 0's five batches
            first.trainee.stop.signal_number = signal.SIGINT
        return mse_step(batch, model)

    def step_lr(optimizer):
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)

    hooks = HookRegistry()
    hooks.register("train_step", stopping_step)
    first = harness(hooks=hooks, schedulers=step_lr, data=loaders(validation=False))
    with pytest.raises(Interrupted):
        fit(first.trainee, TrainState())
    checkpoint = first.saved[-1]
    assert checkpoint.position is not None and checkpoint.position.batches_done == 5

    second = harness(schedulers=step_lr, data=loaders(validation=False), max_epochs=1)
    second.trainee.optimizers.optimizers["main"].load_state_dict(checkpoint.optimizers["optimizers"]["main"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's "lr_scheduler.step() before optimizer.step()" included
        fit(second.trainee, copy.deepcopy(checkpoint.state), Resumption(checkpoint.rng, checkpoint.position))
    assert second.logger.metrics("lr") == [{"main": 0.05}]
