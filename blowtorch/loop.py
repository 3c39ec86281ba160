"""The training loop, top to bottom: fit -> run_epoch -> train_pass / validate_pass.

Per step: move the batch, call the user's step, back-propagate, step the optimizers, keep the
values on the device. Per epoch: read the values once, fan the means out to the loggers, step the
schedulers, checkpoint. The loop knows nothing of sacred, files or devices beyond the one it is
given: everything it works with arrives in a :class:`Trainee`, built by :mod:`blowtorch.setup`.
Of the user's functions, only ``configure_optimizers`` is called elsewhere (by the set-up).
"""

from __future__ import annotations

import math
import re
import time
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol

import torch
from torch.nn.parallel import DistributedDataParallel

from blowtorch.compilation import compile_failure, is_compile_failure
from blowtorch.device import batch_size_of, move_to_device
from blowtorch.distributed import Distributed
from blowtorch.errors import NonFiniteLossError, OptionError, UsageError
from blowtorch.hooks import Hook, HookRegistry
from blowtorch.interrupt import Interrupted, StopRequest
from blowtorch.loggers.fanout import LoggerFanout
from blowtorch.loggers.progress import Progress
from blowtorch.metrics import (
    LossWatch,
    PassAccumulator,
    PassResult,
    StepValue,
    normalize_step_output,
    raise_if_loss_not_finite,
    resolve_metric,
    resolve_optimize_metric,
)
from blowtorch.optim import OptimizerSet
from blowtorch.options import RunOptions
from blowtorch.precision import Precision
from blowtorch.resume import Resumption, TrainingBatches
from blowtorch.rng import capture_rng_state, loader_generators, restore_rng_state
from blowtorch.state import EpochPosition, TrainState

#: Seconds between updates of the progress display (and checks whether the loss is due to be read).
TICK = 0.1


class SaveCheckpoint(Protocol):
    """Writes ``latest.pt``: after an epoch (``position=None``; then also ``best.pt`` if ``is_best``),
    or at ``position`` inside one."""

    def __call__(
        self, state: TrainState, rng: dict[str, Any], *, position: EpochPosition | None = None, is_best: bool = False
    ) -> None: ...


@dataclass(kw_only=True)
class Trainee:
    """Everything one call of :func:`fit` works with."""

    model: torch.nn.Module
    train_loader: Iterable[Any]
    val_loader: Iterable[Any] | None
    hooks: HookRegistry
    optimizers: OptimizerSet
    device: torch.device
    options: RunOptions
    loggers: LoggerFanout
    progress: Progress
    save_checkpoint: SaveCheckpoint
    precision: Precision = Precision("32")
    distributed: Distributed | None = None  # under torchrun: the epoch means are reduced across ranks
    ddp: DistributedDataParallel | None = None  # the wrapper whose gradient sync accumulation skips
    stop: StopRequest = field(default_factory=StopRequest)

    def __post_init__(self) -> None:
        # The loaders' own generators (generator=...) decide their order: part of the random state.
        self.generators = {
            **loader_generators(self.train_loader, "train_loader"),
            **loader_generators(self.val_loader, "val_loader"),
        }


def fit(trainee: Trainee, state: TrainState, resumption: Resumption | None = None) -> None:
    """Train from ``state`` up to ``options.max_epochs`` (a total, epochs counted from 0).

    ``resumption`` continues from a checkpoint: after its epoch, or replaying the epoch it stopped in.
    """
    was_training = trainee.model.training
    replay = resumption if resumption is not None and resumption.position is not None else None
    try:
        with torch.autograd.set_detect_anomaly(trainee.options.detect_anomalies):
            if resumption is not None and replay is None:
                restore_rng_state(resumption.rng, trainee.generators)
            while state.epoch < trainee.options.max_epochs:
                run_epoch(trainee, state, replay)
                replay = None
                state.epoch += 1
    finally:
        trainee.model.train(was_training)


def run_epoch(trainee: Trainee, state: TrainState, replay: Resumption | None) -> None:
    epoch, options = state.epoch, trainee.options
    _call(trainee, "before_epoch", state)
    # With optimize_first=False, epoch 0 is a baseline: a pass over the training data without updates.
    optimize = options.optimize_first or epoch > 0
    validation_only = replay is not None and replay.validation_left  # it stopped during validation
    if validation_only:  # the training pass is done: its means are in the checkpoint
        assert replay is not None and replay.position is not None and replay.position.train_metrics is not None
        restore_rng_state(replay.rng, trainee.generators)
        metrics = {"train": replay.position.train_metrics}
        train_steps = replay.position.batches_done
    else:
        train = train_pass(trainee, state, optimize, replay)
        updates = _update_metrics(trainee, epoch) if optimize else {}
        means = {**train.means, **{k: v for k, v in updates.items() if k.startswith("grad_norm")}}
        metrics = {"train": trainee.hooks.derived_metrics("after_train", means, _hook_arguments(trainee, state, False))}
        trainee.loggers.log_metrics(metrics["train"], "train", epoch, state.global_step)
        trainee.loggers.log_metrics(trainee.optimizers.learning_rates(), "lr", epoch, state.global_step)
        if "skipped_steps" in updates:  # float16: how often the scaler skipped a step, and where its scale is
            amp = {"skipped_steps": updates["skipped_steps"], "scale": updates["scale"]}
            trainee.loggers.log_metrics(amp, "amp", epoch, state.global_step)
        raise_if_loss_not_finite(train, state.optimize_metric, epoch, state.global_step - train.steps)
        train_steps = train.steps
    # Where a stop request (or a misnamed metric) during validation checkpoints: the training pass is done.
    after_training = EpochPosition(train_steps, train_metrics=metrics["train"])
    rng_after_training = capture_rng_state(trainee.generators)
    if trainee.val_loader is not None:
        val = validate_pass(trainee, state, after_training, rng_after_training)
        metrics["val"] = trainee.hooks.derived_metrics("after_validate", val.means, _hook_arguments(trainee, state, True))
        trainee.loggers.log_metrics(metrics["val"], "val", epoch, state.global_step)
    state.last_metrics = {f"{phase}.{name}": value for phase, values in metrics.items() for name, value in values.items()}
    try:  # at the end of epoch 0 already, also when it is the baseline: a typo must not wait for training
        state.checkpoint_metric = state.checkpoint_metric or resolve_metric(options.checkpoint_metric, metrics, "checkpoint_metric")
        monitors = {name: resolve_metric(name, metrics, "monitor") for name in trainee.optimizers.monitors()}
    except OptionError as error:
        if not optimize:
            raise
        trainee.save_checkpoint(state, rng_after_training, position=after_training)
        raise OptionError(
            f"{error}. The training of epoch {epoch} is kept in checkpoints/latest.pt: fix the name and resume from the run directory"
        ) from None
    if optimize:
        with warnings.catch_warnings():
            if replay is not None and replay.position is not None and train_steps == replay.position.batches_done:
                # Every optimizer step of this epoch happened before the resume; torch cannot know that.
                warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()` before"))
            trainee.optimizers.step_epoch_schedulers(state.last_metrics, state.checkpoint_metric, lambda name: monitors[name])
    value = state.last_metrics[state.checkpoint_metric]
    is_best = state.is_improvement(value, options.smaller_is_better)
    if is_best:
        state.best_value, state.best_epoch = value, epoch
    trainee.save_checkpoint(state, capture_rng_state(trainee.generators), is_best=is_best)
    _call(trainee, "after_epoch", state)
    trainee.loggers.on_epoch_end(epoch, state.global_step)
    _stop_if_requested(trainee)


def train_pass(trainee: Trainee, state: TrainState, optimize: bool, replay: Resumption | None) -> PassResult:
    model, step_hook, options = trainee.model, trainee.hooks.get("train_step"), trainee.options
    every, log_every = options.checkpoint_every_n_steps, options.log_every_n_steps
    assert step_hook is not None  # checked before training starts
    sampler: Any = getattr(trainee.train_loader, "sampler", None)
    if hasattr(sampler, "set_epoch"):  # a DistributedSampler shuffles by epoch
        sampler.set_epoch(state.epoch)
    batches = TrainingBatches(trainee.train_loader, trainee.generators, state.epoch, replay)
    accumulator = PassAccumulator("train_step")
    if replay is not None and replay.position is not None and replay.position.partial is not None:
        accumulator.restore(replay.position.partial)
    model.train()
    if optimize:
        trainee.optimizers.zero_grad()  # gradients the model came with are not this run's
    # A baseline pass leaves the model as it found it: BatchNorm's running statistics included.
    baseline_buffers = None if optimize else _copy_buffers(model)
    _start_update_statistics(trainee, replay)
    accumulate = trainee.optimizers.rule.accumulate_grad_batches
    group_pending = checkpoint_due = False  # gradients of an accumulation group not stepped yet; a checkpoint waiting for them
    device, optimizers, ddp, progress, stop = trainee.device, trainee.optimizers, trainee.ddp, trainee.progress, trainee.stop
    autocast = trainee.precision.autocast(device) if trainee.precision.autocasts else None
    arguments = _step_arguments(trainee, state, is_validate=False)  # once per pass; each step sets its own entries
    watch, next_tick = LossWatch(), 0.0
    progress.start_pass("train", state.epoch, _length(trainee.train_loader), done=batches.done)
    with torch.set_grad_enabled(optimize):
        for batch_index, batch in batches:
            arguments["batch"] = batch = move_to_device(batch, device)
            arguments["batch_index"], arguments["step"] = batch_index, state.global_step
            probe = not optimize and batch_index == batches.done  # the baseline still finds an .item() loss at once
            values = _step_values(trainee, step_hook, arguments, autocast, probe)
            if state.optimize_metric is None:
                state.optimize_metric = resolve_optimize_metric(options.optimize_metric, values)
            loss = values[state.optimize_metric]
            if optimize or probe:
                if not isinstance(loss, torch.Tensor) or not loss.requires_grad:
                    _not_differentiable(state.optimize_metric)
                if optimize:
                    group_pending = (batch_index + 1) % accumulate != 0
                    if group_pending and ddp is not None:  # a batch that does not step keeps its gradients local: one all-reduce per group
                        with ddp.no_sync():
                            optimizers.backward(loss)
                    else:
                        optimizers.backward(loss)
                    if not group_pending:
                        optimizers.step()
            accumulator.add(values, batch_size_of(batch))
            if log_every and state.global_step % log_every == 0:
                _log_step(trainee, values, state)  # reads this step's values from the device
            state.global_step += 1
            if (now := time.monotonic()) >= next_tick:  # the display and the loss watch, a few times a second
                next_tick = now + TICK
                progress.update(batch_index + 1)
                if (value := watch.read(loss)) is not None:
                    progress.show_loss(value)
                    if not math.isfinite(value):
                        first_step = state.global_step - batch_index - 1
                        raise_if_loss_not_finite(accumulator.result(), state.optimize_metric, state.epoch, first_step)
            if every and state.global_step % every == 0:
                checkpoint_due = True
            # Under torchrun all ranks agree after every step (a blocking all-reduce): a stop then comes after
            # the step a signal arrived in, as in one process; agreeing a step later would save the round
            # trip but could cost a preempted job with long steps its last checkpoint.
            stopping = stop.signal_number is not None if trainee.distributed is None else _stop_agreed(trainee)
            if (stopping or checkpoint_due) and not group_pending:  # never inside an accumulation group
                checkpoint_due = False
                position = EpochPosition(batch_index + 1, batches.start_rng)
                _checkpoint_inside_epoch(trainee, state, position, accumulator, baseline_buffers, stopping)
    if group_pending:  # a shorter last group: its batches still count
        trainee.optimizers.step()
    trainee.progress.end_pass()
    if baseline_buffers is not None:
        _restore_buffers(model, baseline_buffers)
    return _non_empty(accumulator.result(trainee.distributed), "train_loader")


def validate_pass(trainee: Trainee, state: TrainState, after_training: EpochPosition, rng_after_training: dict[str, Any]) -> PassResult:
    """One pass over the validation data; a stop request checkpoints ``after_training`` and stops.

    Resuming from that checkpoint runs this validation again from its start.
    """
    step_hook = trainee.hooks.get("validate_step")
    assert step_hook is not None and trainee.val_loader is not None  # checked before training starts
    accumulator = PassAccumulator("validate_step")
    trainee.model.eval()
    device, progress, stop = trainee.device, trainee.progress, trainee.stop
    autocast = trainee.precision.autocast(device) if trainee.precision.autocasts else None
    arguments = _step_arguments(trainee, state, is_validate=True)  # once per pass; each step sets its own entries
    next_tick = 0.0
    progress.start_pass("val", state.epoch, _length(trainee.val_loader))
    with torch.no_grad():
        for batch_index, batch in enumerate(trainee.val_loader):
            arguments["batch"] = batch = move_to_device(batch, device)
            arguments["batch_index"] = batch_index
            accumulator.add(_step_values(trainee, step_hook, arguments, autocast), batch_size_of(batch))
            if (now := time.monotonic()) >= next_tick:
                next_tick = now + TICK
                progress.update(batch_index + 1)
            # Under torchrun the ranks' validation shares differ in length, so they cannot agree per
            # step: a stop request then waits for the end of the epoch (and its checkpoint).
            if stop.signal_number is not None and trainee.distributed is None:
                progress.end_pass()
                trainee.save_checkpoint(state, rng_after_training, position=after_training)
                _stop_if_requested(trainee)
    progress.end_pass()
    return _non_empty(accumulator.result(trainee.distributed), "val_loader")


def _checkpoint_inside_epoch(
    trainee: Trainee,
    state: TrainState,
    position: EpochPosition,
    accumulator: PassAccumulator,
    baseline_buffers: dict[str, torch.Tensor] | None,
    stopping: bool,
) -> None:
    """Write latest.pt at the current step (every n steps, or on a stop request) and stop if ``stopping``.

    Under torchrun ``stopping`` is what every rank agreed after this step; a signal arriving during
    the write is agreed after the next step (stopping on it here, alone, would leave the other ranks
    in a collective this rank never joins)."""
    checked = accumulator.result(trainee.distributed)  # every rank decides alike
    raise_if_loss_not_finite(checked, state.optimize_metric, state.epoch, state.global_step - position.batches_done)
    if baseline_buffers is not None:  # a resumed baseline continues from the model as it was before it
        _restore_buffers(trainee.model, baseline_buffers)
    position.partial = accumulator.snapshot()
    position.updates = trainee.optimizers.statistics.snapshot()
    trainee.save_checkpoint(state, capture_rng_state(trainee.generators), position=position)
    if stopping or (trainee.distributed is None and trainee.stop.requested):  # one process stops at once
        assert trainee.stop.signal_number is not None
        trainee.progress.end_pass()
        raise Interrupted(trainee.stop.signal_number)


def _start_update_statistics(trainee: Trainee, replay: Resumption | None) -> None:
    statistics = trainee.optimizers.statistics
    if replay is not None and replay.position is not None and replay.position.updates is not None:
        statistics.restore(replay.position.updates, trainee.device)
    else:
        statistics.reset()


def _update_metrics(trainee: Trainee, epoch: int) -> dict[str, float]:
    """The epoch's gradient norms and float16 statistics (one read); a non-finite norm stops the run."""
    values = trainee.optimizers.statistics.read()
    scaler = trainee.optimizers.rule.scaler
    if scaler is not None:
        values["scale"] = float(scaler.get_scale())
    elif values.pop("non_finite_norms", 0):  # float16 skips such steps by design; otherwise the weights are lost
        raise NonFiniteLossError(
            f"the gradient norm became NaN or infinite in epoch {epoch}; no checkpoint was written for this epoch. Lower the "
            f"learning rate, lower gradient_clip_val, or check the data; detect_anomalies=True shows the operation"
        )
    values.pop("non_finite_norms", None)
    return values


def _step_values(trainee: Trainee, step: Hook, arguments: dict[str, Any], autocast: Any, probe: bool = False) -> dict[str, StepValue]:
    """What the step returns, normalized; run under ``autocast`` (if any), with gradients for the baseline's probe."""
    if probe:
        with torch.enable_grad():
            return _step_values(trainee, step, arguments, autocast)
    try:
        if autocast is None:
            output = step(arguments)
        else:
            with autocast:
                output = step(arguments)
    except Exception as error:
        if trainee.options.compile is not False and is_compile_failure(error):
            raise compile_failure(error) from error
        raise
    return normalize_step_output(output, step.kind)


def _stop_agreed(trainee: Trainee) -> bool:
    """Whether to stop after this step. Under torchrun every rank must stop at the same step (or the
    next collective waits forever), so the ranks agree: a signal to any one of them stops all."""
    if trainee.distributed is None:
        return trainee.stop.signal_number is not None
    signal_number = trainee.distributed.max(trainee.stop.signal_number or 0)  # CPU tensors: no GPU sync
    if signal_number and trainee.stop.signal_number is None:
        trainee.stop.signal_number = signal_number
    return bool(signal_number)


def _stop_if_requested(trainee: Trainee) -> None:
    if _stop_agreed(trainee):
        assert trainee.stop.signal_number is not None
        raise Interrupted(trainee.stop.signal_number)


def _log_step(trainee: Trainee, values: Mapping[str, Any], state: TrainState) -> None:
    metrics = {name: float(value.detach()) if isinstance(value, torch.Tensor) else value for name, value in values.items()}
    trainee.loggers.log_metrics(metrics, "train_step", state.epoch, state.global_step)
    trainee.loggers.log_metrics(trainee.optimizers.learning_rates(), "lr_step", state.epoch, state.global_step)


def _not_differentiable(name: str | None) -> NoReturn:
    raise UsageError(
        f"the optimized metric '{name}' returned by train_step does not require grad, so it cannot be "
        f"back-propagated; return the loss tensor itself (not .item(), .detach() or a number), or pick "
        f"another metric with optimize_metric"
    )


def _step_arguments(trainee: Trainee, state: TrainState, is_validate: bool) -> dict[str, Any]:
    """A pass's step arguments; ``batch``, ``batch_index`` and ``step`` are each step's own."""
    return {
        "batch": None,
        "model": trainee.model,
        "epoch": state.epoch,
        "step": state.global_step,
        "batch_index": 0,
        "device": trainee.device,
        "is_validate": is_validate,
    }


def _hook_arguments(trainee: Trainee, state: TrainState, is_validate: bool) -> dict[str, Any]:
    return {"model": trainee.model, "epoch": state.epoch, "step": state.global_step, "device": trainee.device, "is_validate": is_validate}


def _call(trainee: Trainee, kind: str, state: TrainState) -> None:
    hook = trainee.hooks.get(kind)
    if hook is not None:
        hook(_hook_arguments(trainee, state, is_validate=False))


def _non_empty(result: PassResult, loader_name: str) -> PassResult:
    if result.steps == 0:
        raise OptionError(f"{loader_name} yielded no batches; give it a dataset with at least one sample")
    return result


def _copy_buffers(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: buffer.detach().clone() for name, buffer in model.named_buffers()}


def _restore_buffers(model: torch.nn.Module, saved: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            buffer.copy_(saved[name])


def _length(loader: Iterable[Any]) -> int | None:
    try:
        return len(loader)  # type: ignore[arg-type]
    except TypeError:
        return None
