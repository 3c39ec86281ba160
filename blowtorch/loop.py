"""The training loop, top to bottom: fit -> run_epoch -> train_pass / validate_pass.

Per step: move the batch, call the user's step, back-propagate, keep the values on the device.
Per epoch: read the values once, fan the means out to the loggers, step schedulers, checkpoint.
The loop is the only place that calls user hooks.

Resuming inside an epoch replays it: the random state from the start of the epoch is restored
before the data iterator is created, the batches already trained on are skipped, and the random
state from the moment of the checkpoint is restored, so the data order and every later random
draw match the run that was interrupted.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

import torch

from blowtorch.device import batch_size_of, move_to_device
from blowtorch.errors import CheckpointError, OptionError, UsageError
from blowtorch.hooks import HookRegistry
from blowtorch.interrupt import Interrupted, StopRequest
from blowtorch.loggers.fanout import LoggerFanout
from blowtorch.metrics import (
    PassAccumulator,
    PassResult,
    check_metric_name,
    normalize_step_output,
    raise_if_loss_not_finite,
    resolve_metric,
    resolve_optimize_metric,
)
from blowtorch.optim import OptimizerSet
from blowtorch.progress import Progress
from blowtorch.rng import capture_rng_state, loader_generators, restore_rng_state
from blowtorch.state import EpochProgress, TrainState

#: save_checkpoint(state, epoch_end, is_best, rng): writes latest.pt (and best.pt at epoch ends)
SaveCheckpoint = Callable[[TrainState, bool, bool, dict], None]


@dataclass(frozen=True)
class FitOptions:
    max_epochs: int
    optimize_first: bool = False
    optimize_metric: str | None = None
    checkpoint_metric: str | None = None
    smaller_is_better: bool = True
    detect_anomalies: bool = False
    checkpoint_every_n_steps: int | None = None
    log_every_n_steps: int | None = None


@dataclass
class Trainee:
    """Everything one call of :func:`fit` works with."""

    model: torch.nn.Module
    train_loader: Iterable[Any]
    val_loader: Iterable[Any] | None
    hooks: HookRegistry
    optimizers: OptimizerSet
    device: torch.device
    options: FitOptions
    loggers: LoggerFanout
    progress: Progress
    save_checkpoint: SaveCheckpoint
    stop: StopRequest

    def __post_init__(self) -> None:
        # The loaders' own generators (generator=...) decide their order: part of the random state.
        self.generators = {
            **loader_generators(self.train_loader, "train_loader"),
            **loader_generators(self.val_loader, "val_loader"),
        }


def fit(trainee: Trainee, state: TrainState, resume_rng: dict[str, Any] | None = None) -> None:
    """Train from ``state`` up to ``options.max_epochs`` (a total, epochs counted from 0).

    ``resume_rng`` is the random state of the checkpoint a resumed run continues from.
    """
    was_training = trainee.model.training
    try:
        with torch.autograd.set_detect_anomaly(trainee.options.detect_anomalies):
            if resume_rng is not None and state.progress is None:
                restore_rng_state(resume_rng, trainee.generators)
            while state.epoch < trainee.options.max_epochs:
                run_epoch(trainee, state, resume_rng if state.progress is not None else None)
                state.epoch += 1
    finally:
        trainee.model.train(was_training)


def run_epoch(trainee: Trainee, state: TrainState, resume_rng: dict[str, Any] | None) -> None:
    epoch, options = state.epoch, trainee.options
    resumed, state.progress = state.progress, None
    _call(trainee, "before_epoch", state)
    # With optimize_first=False, epoch 0 is a baseline: a pass over the training data without updates.
    optimize = options.optimize_first or epoch > 0
    if resumed is not None and resumed.train_metrics is not None:  # stopped during validation
        assert resume_rng is not None
        restore_rng_state(resume_rng, trainee.generators)
        metrics = {"train": resumed.train_metrics}
        train_steps = resumed.batches_done
    else:
        start_step = state.global_step - (resumed.batches_done if resumed else 0)
        train = train_pass(trainee, state, optimize, resumed, resume_rng)
        metrics = {"train": _after_pass(trainee, "after_train", train.means, state, is_validate=False)}
        trainee.loggers.log_metrics(metrics["train"], "train", epoch, state.global_step)
        trainee.loggers.log_metrics(trainee.optimizers.learning_rates(), "lr", epoch, state.global_step)
        raise_if_loss_not_finite(train, state.optimize_metric, epoch, start_step)
        train_steps = train.steps
    if trainee.val_loader is not None:
        stopped = EpochProgress(batches_done=train_steps, train_metrics=metrics["train"])
        val = validate_pass(trainee, state, stopped, capture_rng_state(trainee.generators))
        metrics["val"] = _after_pass(trainee, "after_validate", val.means, state, is_validate=True)
        trainee.loggers.log_metrics(metrics["val"], "val", epoch, state.global_step)
    qualified = {f"{phase}.{name}": value for phase, values in metrics.items() for name, value in values.items()}
    state.last_metrics = qualified
    if state.checkpoint_metric is None:
        state.checkpoint_metric = resolve_metric(options.checkpoint_metric, metrics, "checkpoint_metric")
    if optimize:
        with warnings.catch_warnings():
            if resumed is not None and resumed.train_metrics is not None:
                # The optimizer steps of this epoch happened before the resume; torch cannot know that.
                warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()` before"))
            trainee.optimizers.step_epoch_schedulers(qualified, state.checkpoint_metric, lambda name: resolve_metric(name, metrics, "monitor"))
    value = qualified[state.checkpoint_metric]
    is_best = state.is_improvement(value, options.smaller_is_better)
    if is_best:
        state.best_value, state.best_epoch = value, epoch
    trainee.save_checkpoint(state, True, is_best, capture_rng_state(trainee.generators))
    _call(trainee, "after_epoch", state)
    trainee.loggers.on_epoch_end(epoch, state.global_step)
    if trainee.stop.requested:
        raise Interrupted(trainee.stop.signal_number)  # type: ignore[arg-type]


def train_pass(
    trainee: Trainee, state: TrainState, optimize: bool, resumed: EpochProgress | None, resume_rng: dict[str, Any] | None
) -> PassResult:
    model, step_hook = trainee.model, trainee.hooks.get("train_step")
    every, log_every = trainee.options.checkpoint_every_n_steps, trainee.options.log_every_n_steps
    assert step_hook is not None  # checked before training starts
    accumulator = PassAccumulator("train_step")
    skip = 0
    if resumed is not None:
        assert resumed.epoch_start_rng is not None and resumed.partial is not None and resume_rng is not None
        accumulator.restore(resumed.partial)
        skip, epoch_start_rng = resumed.batches_done, resumed.epoch_start_rng
        restore_rng_state(epoch_start_rng, trainee.generators)
    else:
        epoch_start_rng = capture_rng_state(trainee.generators)
    model.train()
    trainee.progress.start_pass("train", state.epoch, _length(trainee.train_loader), done=skip)
    batches = iter(trainee.train_loader)
    if resumed is not None:
        _skip(batches, skip, state.epoch)
        restore_rng_state(resume_rng, trainee.generators)  # type: ignore[arg-type]
    with torch.set_grad_enabled(optimize):
        for batch_index, batch in enumerate(batches, start=skip):
            batch = move_to_device(batch, trainee.device)
            values = normalize_step_output(
                step_hook(_step_arguments(trainee, state, batch, batch_index, is_validate=False)), "train_step"
            )
            if state.optimize_metric is None:
                state.optimize_metric = resolve_optimize_metric(trainee.options.optimize_metric, values)
            loss = values[state.optimize_metric]
            if optimize:
                _check_differentiable(loss, state.optimize_metric)
                trainee.optimizers.step(loss)  # type: ignore[arg-type]
            accumulator.add(values, batch_size_of(batch))
            if log_every and state.global_step % log_every == 0:
                _log_step(trainee, values, state)  # reads this step's values from the device
            state.global_step += 1
            trainee.progress.advance(loss)
            if trainee.stop.requested or (every and state.global_step % every == 0):
                _checkpoint_inside_epoch(trainee, state, EpochProgress(batch_index + 1, epoch_start_rng), accumulator)
    trainee.progress.end_pass()
    return _non_empty(accumulator.result(), "train_loader")


def validate_pass(trainee: Trainee, state: TrainState, stopped: EpochProgress, rng_after_train: dict[str, Any]) -> PassResult:
    """One pass over the validation data; a stop request checkpoints the end of the training pass."""
    step_hook = trainee.hooks.get("validate_step")
    assert step_hook is not None and trainee.val_loader is not None  # checked before training starts
    accumulator = PassAccumulator("validate_step")
    trainee.model.eval()
    trainee.progress.start_pass("val", state.epoch, _length(trainee.val_loader))
    with torch.no_grad():
        for batch_index, batch in enumerate(trainee.val_loader):
            batch = move_to_device(batch, trainee.device)
            values = normalize_step_output(
                step_hook(_step_arguments(trainee, state, batch, batch_index, is_validate=True)), "validate_step"
            )
            accumulator.add(values, batch_size_of(batch))
            trainee.progress.advance(None)
            if trainee.stop.requested:
                trainee.progress.end_pass()
                state.progress = stopped  # resuming runs this validation again from its start
                trainee.save_checkpoint(state, False, False, rng_after_train)
                raise Interrupted(trainee.stop.signal_number)  # type: ignore[arg-type]
    trainee.progress.end_pass()
    return _non_empty(accumulator.result(), "val_loader")


def _log_step(trainee: Trainee, values: Mapping[str, Any], state: TrainState) -> None:
    metrics = {name: float(value.detach()) if isinstance(value, torch.Tensor) else value for name, value in values.items()}
    trainee.loggers.log_metrics(metrics, "train_step", state.epoch, state.global_step)
    trainee.loggers.log_metrics(trainee.optimizers.learning_rates(), "lr_step", state.epoch, state.global_step)


def _checkpoint_inside_epoch(trainee: Trainee, state: TrainState, where: EpochProgress, accumulator: PassAccumulator) -> None:
    """Write latest.pt at the current step (every n steps, or on a stop request) and stop if asked to."""
    partial = accumulator.result()
    raise_if_loss_not_finite(partial, state.optimize_metric, state.epoch, state.global_step - where.batches_done)
    where.partial = accumulator.snapshot()
    state.progress = where
    try:
        trainee.save_checkpoint(state, False, False, capture_rng_state(trainee.generators))
    finally:
        state.progress = None
    if trainee.stop.requested:
        trainee.progress.end_pass()
        raise Interrupted(trainee.stop.signal_number)  # type: ignore[arg-type]


def _skip(batches: Any, count: int, epoch: int) -> None:
    for done in range(count):
        try:
            next(batches)
        except StopIteration:
            raise CheckpointError(
                f"the checkpoint stopped after {count} training batches of epoch {epoch}, but train_loader yields "
                f"only {done}; resume with the same training data and batch size"
            ) from None


def _check_differentiable(loss: Any, name: str) -> None:
    if not isinstance(loss, torch.Tensor) or not loss.requires_grad:
        raise UsageError(
            f"the optimized metric '{name}' returned by train_step does not require grad, so it cannot be "
            f"back-propagated; return the loss tensor itself (not .item(), .detach() or a number), or pick "
            f"another metric with optimize_metric"
        )


def _step_arguments(trainee: Trainee, state: TrainState, batch: Any, batch_index: int, is_validate: bool) -> dict[str, Any]:
    return {
        "batch": batch,
        "model": trainee.model,
        "epoch": state.epoch,
        "step": state.global_step,
        "batch_index": batch_index,
        "device": trainee.device,
        "is_validate": is_validate,
    }


def _after_pass(trainee: Trainee, kind: str, means: dict[str, float], state: TrainState, is_validate: bool) -> dict[str, float]:
    """Let an after_train / after_validate hook look at the means and add derived metrics."""
    hook = trainee.hooks.get(kind)
    if hook is None:
        return means
    metrics = dict(means)
    extra = hook(
        {
            "metrics": metrics,
            "model": trainee.model,
            "epoch": state.epoch,
            "step": state.global_step,
            "device": trainee.device,
            "is_validate": is_validate,
        }
    )
    if isinstance(extra, Mapping):
        for name in extra:
            check_metric_name(name, kind)
        metrics.update(extra)
    elif extra is not None:
        raise UsageError(f"{kind} returned {type(extra).__name__}; return None or a dict of extra metrics")
    return {name: _as_float(value, name, kind) for name, value in metrics.items()}


def _as_float(value: Any, name: str, kind: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError):
        raise UsageError(f"{kind} set metric '{name}' to {value!r:.60}; metrics must be numbers") from None


def _call(trainee: Trainee, kind: str, state: TrainState) -> None:
    hook = trainee.hooks.get(kind)
    if hook is not None:
        hook({"model": trainee.model, "epoch": state.epoch, "step": state.global_step, "device": trainee.device})


def _non_empty(result: PassResult, loader_name: str) -> PassResult:
    if result.steps == 0:
        raise OptionError(f"{loader_name} yielded no batches; give it a dataset with at least one sample")
    return result


def _length(loader: Iterable[Any]) -> int | None:
    try:
        return len(loader)  # type: ignore[arg-type]
    except TypeError:
        return None
