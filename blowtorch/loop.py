"""The training loop, top to bottom: fit -> run_epoch -> train_pass / validate_pass.

Per step: move the batch, call the user's step, back-propagate, keep the values on the device.
Per epoch: read the values once, fan the means out to the loggers, step schedulers, checkpoint.
The loop is the only place that calls user hooks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

import torch

from blowtorch.device import batch_size_of, move_to_device
from blowtorch.errors import NonFiniteLossError, OptionError, UsageError
from blowtorch.hooks import HookRegistry
from blowtorch.loggers.fanout import LoggerFanout
from blowtorch.metrics import PassAccumulator, PassResult, normalize_step_output
from blowtorch.optim import OptimizerSet
from blowtorch.progress import Progress
from blowtorch.state import TrainState

PHASE_LABELS = {"train": "training", "val": "validation"}


@dataclass(frozen=True)
class FitOptions:
    max_epochs: int
    optimize_first: bool = False
    optimize_metric: str | None = None
    checkpoint_metric: str | None = None
    smaller_is_better: bool = True
    detect_anomalies: bool = False


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
    save_checkpoint: Callable[[TrainState, Mapping[str, float], bool], None]


def fit(trainee: Trainee, state: TrainState) -> None:
    """Train from ``state.epoch`` up to ``options.max_epochs`` (a total, epochs counted from 0)."""
    was_training = trainee.model.training
    try:
        with torch.autograd.set_detect_anomaly(trainee.options.detect_anomalies):
            while state.epoch < trainee.options.max_epochs:
                run_epoch(trainee, state)
                state.epoch += 1
    finally:
        trainee.model.train(was_training)


def run_epoch(trainee: Trainee, state: TrainState) -> None:
    epoch, options = state.epoch, trainee.options
    _call(trainee, "before_epoch", state)
    # With optimize_first=False, epoch 0 is a baseline: a pass over the training data without updates.
    optimize = options.optimize_first or epoch > 0
    start_step = state.global_step
    train = train_pass(trainee, state, optimize)
    metrics = {"train": _after_pass(trainee, "after_train", train.means, state, is_validate=False)}
    trainee.loggers.log_metrics(metrics["train"], "train", epoch, state.global_step)
    _raise_if_loss_not_finite(train, state, epoch, start_step)
    if trainee.val_loader is not None:
        val = validate_pass(trainee, state)
        metrics["val"] = _after_pass(trainee, "after_validate", val.means, state, is_validate=True)
        trainee.loggers.log_metrics(metrics["val"], "val", epoch, state.global_step)
    qualified = {f"{phase}.{name}": value for phase, values in metrics.items() for name, value in values.items()}
    state.last_metrics = qualified
    if state.checkpoint_metric is None:
        state.checkpoint_metric = resolve_metric(options.checkpoint_metric, metrics, "checkpoint_metric")
    if optimize:
        trainee.optimizers.step_epoch_schedulers(qualified, state.checkpoint_metric, lambda name: resolve_metric(name, metrics, "monitor"))
    value = qualified[state.checkpoint_metric]
    is_best = state.is_improvement(value, options.smaller_is_better)
    if is_best:
        state.best_value, state.best_epoch = value, epoch
    trainee.save_checkpoint(state, qualified, is_best)
    _call(trainee, "after_epoch", state)
    trainee.loggers.on_epoch_end(epoch, state.global_step)


def train_pass(trainee: Trainee, state: TrainState, optimize: bool) -> PassResult:
    model, step_hook = trainee.model, trainee.hooks.get("train_step")
    assert step_hook is not None  # checked before training starts
    accumulator = PassAccumulator("train_step")
    model.train()
    trainee.progress.start_pass("train", state.epoch, _length(trainee.train_loader))
    with torch.set_grad_enabled(optimize):
        for batch_index, batch in enumerate(trainee.train_loader):
            batch = move_to_device(batch, trainee.device)
            values = normalize_step_output(
                step_hook(_step_arguments(trainee, state, batch, batch_index, is_validate=False)), "train_step"
            )
            if state.optimize_metric is None:
                state.optimize_metric = _resolve_optimize_metric(trainee.options.optimize_metric, values)
            loss = values[state.optimize_metric]
            if optimize:
                _check_differentiable(loss, state.optimize_metric)
                trainee.optimizers.step(loss)  # type: ignore[arg-type]
            accumulator.add(values, batch_size_of(batch))
            state.global_step += 1
            trainee.progress.advance(loss)
    trainee.progress.end_pass()
    return _non_empty(accumulator.result(), "train_loader")


def validate_pass(trainee: Trainee, state: TrainState) -> PassResult:
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
    trainee.progress.end_pass()
    return _non_empty(accumulator.result(), "val_loader")


def resolve_metric(requested: str | None, metrics: Mapping[str, Mapping[str, float]], option: str) -> str:
    """The qualified name (``val.loss``) of ``requested``.

    A ``train.``/``val.`` prefix picks the phase; a bare name means validation when there is a
    val_loader, else training; ``None`` means the first metric of that default phase.
    """
    default_phase = "val" if "val" in metrics else "train"
    if requested is None:
        return f"{default_phase}.{next(iter(metrics[default_phase]))}"
    prefix, _, rest = requested.partition(".")
    if prefix in metrics and rest in metrics[prefix]:
        return requested
    if requested in metrics[default_phase]:
        return f"{default_phase}.{requested}"
    phase = prefix if prefix in metrics else default_phase
    hint = " (there is no val_loader, so metrics come from training)" if prefix == "val" and "val" not in metrics else ""
    raise OptionError(
        f"{option} '{requested}' is not among the {PHASE_LABELS[phase]} metrics {list(metrics[phase])}{hint}; "
        f"pass one of those, optionally prefixed with 'train.' or 'val.'"
    )


def _resolve_optimize_metric(requested: str | None, values: Mapping[str, Any]) -> str:
    if requested is None:
        return next(iter(values))
    name = requested[len("train."):] if requested.startswith("train.") and requested not in values else requested
    if name not in values:
        raise OptionError(
            f"optimize_metric '{requested}' is not among the training metrics {list(values)}; pass one of those"
        )
    return name


def _check_differentiable(loss: Any, name: str) -> None:
    if not isinstance(loss, torch.Tensor) or not loss.requires_grad:
        raise UsageError(
            f"the optimized metric '{name}' returned by train_step does not require grad, so it cannot be "
            f"back-propagated; return the loss tensor itself (not .item(), .detach() or a number), or pick "
            f"another metric with optimize_metric"
        )


def _raise_if_loss_not_finite(result: PassResult, state: TrainState, epoch: int, start_step: int) -> None:
    name = state.optimize_metric
    if name is not None and name in result.first_non_finite:
        step = start_step + result.first_non_finite[name]
        raise NonFiniteLossError(
            f"the training loss '{name}' became NaN or infinite in epoch {epoch}, first at global step {step} "
            f"(batch {result.first_non_finite[name]} of the epoch); no checkpoint was written for this epoch. "
            f"Lower the learning rate, clip gradients, or check the data; detect_anomalies=True shows the "
            f"operation that produced it"
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
        metrics.update(extra)
    elif extra is not None:
        raise UsageError(f"{kind} returned {type(extra).__name__}; return None or a dict of extra metrics")
    return {name: _as_float(value, name, kind) for name, value in metrics.items()}


def _as_float(value: Any, name: str, kind: str) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
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
