"""Everything before the first training step: what the loop trains with, built in one readable order.

1. check what the user passed to ``run(...)``;
2. write the run directory's files (config, model summary, source);
3. the device, and the model on it;
4. the optimizers and schedulers (``configure_optimizers`` sees the model on its device);
5. a resumed run's checkpoint, applied to model, optimizers and schedulers;
6. the loggers, started;
7. the checkpoint writer.

Mixed precision, ``torch.compile``, the process group and distributed samplers belong between
steps 3 and 4 (after the model is on its device, before the optimizers see it).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from blowtorch.checkpoint import apply_checkpoint, build_checkpoint, check_finite_parameters
from blowtorch.checkpoint_files import CheckpointStore
from blowtorch.device import select_device
from blowtorch.errors import UsageError
from blowtorch.hooks import HookRegistry
from blowtorch.loggers.base import RunInfo
from blowtorch.loggers.fanout import LoggerFanout
from blowtorch.loggers.progress import Progress
from blowtorch.loggers.textfile import TextFileLogger
from blowtorch.loop import Trainee
from blowtorch.optim import OptimizerSet, parse_optimizers
from blowtorch.options import RunOptions, check_loader
from blowtorch.resume import ResumePoint, Resumption, config_differences
from blowtorch.rundir import RunDirectory, generate_slug, plain_config, run_name_from_cli
from blowtorch.sacred_bridge.record import RunRecord
from blowtorch.state import EpochPosition, TrainState
from blowtorch.summary import model_summary, source_listing


@dataclass(frozen=True, kw_only=True)
class TrainingInputs:
    """What the user handed to ``run(...)``."""

    model: Any
    train_loader: Iterable[Any]
    val_loader: Iterable[Any] | None
    hooks: HookRegistry
    options: RunOptions
    progress: Progress

    def check(self, resuming: bool) -> None:
        """Raise for a model, hook, option or loader that cannot work, naming the fix."""
        if not isinstance(self.model, torch.nn.Module):
            raise UsageError(
                f"model must be a torch.nn.Module, got {type(self.model).__name__} ({self.model!r:.60}); "
                f"pass the module itself, e.g. run(MyModel(), train_loader)"
            )
        if "train_step" not in self.hooks:
            raise UsageError("no training step is registered; decorate your step function with @run.train_step")
        if "configure_optimizers" not in self.hooks:
            raise UsageError(
                "no optimizer is configured; decorate a function 'def configure_optimizers(model): return "
                "torch.optim.Adam(model.parameters())' with @run.configure_optimizers"
            )
        if self.val_loader is not None and "validate_step" not in self.hooks:
            raise UsageError(
                "a val_loader was given but no @run.validate_step is registered; decorate a function with "
                "@run.validate_step (the training step may carry both decorators) or pass val_loader=None"
            )
        self.options.check(resuming=resuming)
        for label, loader in (("train_loader", self.train_loader), ("val_loader", self.val_loader)):
            check_loader(label, loader)


@dataclass(frozen=True)
class Training:
    """What :func:`set_up` hands the loop: the trainee, where it starts, and what it continues from."""

    trainee: Trainee
    state: TrainState
    resumption: Resumption | None


def set_up(
    inputs: TrainingInputs,
    *,
    record: RunRecord,
    run_dir: RunDirectory,
    point: ResumePoint | None,
    loggers: LoggerFanout,
    text_log: TextFileLogger,
    resume_from_command_line: bool,
) -> Training:
    """Steps 1-7 above. ``loggers`` is started here; the caller finishes it, also after a failure."""
    config = plain_config(record.config)
    if point is not None:
        _record_resume(record, point, config, text_log, resume_from_command_line)
    run_dir.write_config(config)
    inputs.check(resuming=point is not None)
    model = inputs.model
    run_dir.write_text("model-summary.txt", model_summary(model))
    run_dir.write_text("source.txt", source_listing(model, inputs.hooks.functions()))
    device = select_device(inputs.options.use_gpu, inputs.options.gpu_id)
    model.to(device)
    optimizers = _configure_optimizers(inputs.hooks, model, device)
    state, resumption = TrainState(), None
    if point is not None:
        apply_checkpoint(point.checkpoint, model, optimizers, point.path)
        state, resumption = point.train_state(), point.resumption()
    loggers.on_start(
        RunInfo(
            run_dir=run_dir.path,
            name=run_dir.name,
            config=config,
            model=model,
            device=device,
            sacred_run_id=record.id,
            experiment_name=record.experiment_name,
            resumed=point is not None,
            start_epoch=state.epoch,
            start_step=state.global_step,
        )
    )
    trainee = Trainee(
        model=model,
        train_loader=inputs.train_loader,
        val_loader=inputs.val_loader,
        hooks=inputs.hooks,
        optimizers=optimizers,
        device=device,
        options=inputs.options,
        loggers=loggers,
        progress=inputs.progress,
        save_checkpoint=CheckpointWriter(
            CheckpointStore(run_dir.checkpoints, inputs.options.keep_last_epochs), model, optimizers, config, record.id
        ),
    )
    return Training(trainee, state, resumption)


class CheckpointWriter:
    """The loop's ``save_checkpoint``: builds the payload and hands it to the run directory's store."""

    def __init__(
        self, store: CheckpointStore, model: torch.nn.Module, optimizers: OptimizerSet, config: dict[str, Any], run_id: Any
    ) -> None:
        self.store = store
        self.model = model
        self.optimizers = optimizers
        self.config = config
        self.run_id = run_id

    def __call__(
        self, state: TrainState, rng: dict[str, Any], *, position: EpochPosition | None = None, is_best: bool = False
    ) -> None:
        check_finite_parameters(self.model, state.epoch)
        payload = build_checkpoint(
            model=self.model,
            optimizers=self.optimizers,
            state=state,
            position=position,
            rng=rng,
            config=self.config,
            sacred_run_id=self.run_id,
        )
        self.store.save(payload, epoch_end=position is None, is_best=is_best)


def _configure_optimizers(hooks: HookRegistry, model: torch.nn.Module, device: torch.device) -> OptimizerSet:
    hook = hooks.get("configure_optimizers")
    assert hook is not None  # checked with the inputs
    return parse_optimizers(hook({"model": model, "device": device}))


def _record_resume(
    record: RunRecord, point: ResumePoint, config: dict[str, Any], text_log: TextFileLogger, from_command_line: bool
) -> None:
    """sacred has no resume: the new run records where it continues from, and what changed."""
    record.set_info(
        "resumed_from",
        {
            "checkpoint": str(point.path),
            "parent_run_id": point.checkpoint.get("sacred_run_id"),
            "epoch": point.checkpoint["epoch"],
            "global_step": point.checkpoint["state"]["global_step"],
            "inside_epoch": point.checkpoint.get("position") is not None,
        },
    )
    text_log.note(f"resuming from {point.description}, written by sacred run {point.checkpoint.get('sacred_run_id')}")
    differences = config_differences(point.config, config)
    if differences:
        if from_command_line:
            intro = "resuming with command-line config updates on top of the checkpoint's config"
        else:
            intro = "the config of this run differs from the config of the checkpoint it resumes from"
        message = f"{intro}:\n  " + "\n  ".join(differences)
        warnings.warn(message, UserWarning, stacklevel=2)
        text_log.note(message)


def run_directory(options: RunOptions, record: RunRecord, point: ResumePoint | None) -> RunDirectory:
    """The run's directory: a resumed run continues in its own, a new run gets a new one, numbered
    like the run's directory in the default sacred storage (see :mod:`blowtorch.rundir`)."""
    if point is not None and point.run_dir is not None:
        return RunDirectory(point.run_dir)
    name = options.run_name or (record.cli_name and run_name_from_cli(record.cli_name)) or generate_slug()
    return RunDirectory.create(Path(options.save_path).absolute(), name, record.storage_number)
