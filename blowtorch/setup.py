"""Everything before the first training step, in two halves and one readable order.

Before the run is recorded (:func:`prepare`, called by ``run(...)``, so that a typo leaves no
FAILED run in the database and no directory on disk):

1. check what the user passed to ``run(...)``;
2. the device, and the model on it;
3. the optimizers and schedulers (``configure_optimizers`` sees the model on its device);
4. a resumed run's checkpoint, applied to model, optimizers and schedulers.

After (:func:`set_up`, inside the recorded run):

5. the run directory's files (config, model summary, source): a resumed run's directory is
   touched only now, after its checkpoint has been applied;
6. the loggers, started;
7. the checkpoint writer (it finishes each write in a background thread; the job waits for the last).

Between steps 2 and 3 the model gets what wraps it (``DistributedDataParallel`` under torchrun,
then ``torch.compile``); ``configure_optimizers`` still sees the user's own module. Under torchrun
the loaders are replaced by each rank's share at the end of step 4, and ranks other than 0 skip
steps 5-7 (:func:`follow`): they train, and only send their random state to rank 0's checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.nn.parallel import DistributedDataParallel

from blowtorch.checkpoint import apply_checkpoint
from blowtorch.checkpoint_files import CheckpointStore
from blowtorch.checkpoint_writer import CheckpointWriter, SendRandomState
from blowtorch.compilation import compile_arguments, compile_model
from blowtorch.config import config_differences
from blowtorch.device import select_device
from blowtorch.distributed import Distributed
from blowtorch.errors import CheckpointError, OptionError, UsageError
from blowtorch.hooks import HookRegistry
from blowtorch.interrupt import StopRequest
from blowtorch.loggers.base import RunInfo
from blowtorch.loggers.fanout import LoggerFanout
from blowtorch.loggers.progress import Progress
from blowtorch.loggers.textfile import TextFileLogger
from blowtorch.loop import SaveCheckpoint, Trainee
from blowtorch.optim import OptimizerSet, parse_optimizers
from blowtorch.options import RunOptions, check_loader
from blowtorch.precision import Precision
from blowtorch.resume import ResumePoint, Resumption
from blowtorch.rng import seed_everything
from blowtorch.run_names import random_run_name
from blowtorch.rundir import CHECKPOINTS, RunDirectory, plain_config, run_name_from_cli
from blowtorch.sharding import shard_loader
from blowtorch.state import TrainState
from blowtorch.summary import model_summary, source_listing
from blowtorch.user_warnings import warn

if TYPE_CHECKING:  # the record's module belongs to the sacred bridge, imported when a Run is made
    from blowtorch.sacred_bridge.record import RunRecord


@dataclass(frozen=True, kw_only=True)
class TrainingInputs:
    """What the user handed to ``run(...)``."""

    model: Any
    train_loader: Iterable[Any]
    val_loader: Iterable[Any] | None
    hooks: HookRegistry
    options: RunOptions
    progress: Progress
    config_functions: tuple[Callable[..., Any], ...] = ()  # @run.config and @run.named_config, for source.txt

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
        self.check_metric_name("optimize_metric", self.options.optimize_metric)
        self.check_metric_name("checkpoint_metric", self.options.checkpoint_metric)

    def check_metric_name(self, option: str, name: Any) -> None:
        """What can be known of a metric name before the first step returns the metrics."""
        if name is None:
            return
        if not isinstance(name, str) or not name.strip():
            raise OptionError(f"{option} must be a metric name such as 'loss' or 'val.accuracy', got {name!r}")
        if option == "optimize_metric" and name.startswith("val."):
            raise OptionError(
                f"optimize_metric '{name}' is a validation metric, but the optimized metric is one that train_step "
                f"returns; pass its name, e.g. 'loss'"
            )
        if name.startswith("val.") and self.val_loader is None:
            raise OptionError(
                f"{option} '{name}' is a validation metric, but run(...) was given no val_loader; pass a val_loader, "
                f"or a training metric such as 'train.{name[4:]}'"
            )


@dataclass(frozen=True)
class Prepared:
    """Steps 1-4: the model on its device, its optimizers, and where training starts."""

    inputs: TrainingInputs
    device: torch.device
    optimizers: OptimizerSet
    state: TrainState
    resumption: Resumption | None
    point: ResumePoint | None
    settings_changes: list[str]  # optimizer and scheduler settings that differ from the checkpoint's
    precision: Precision
    stepped_model: torch.nn.Module  # the model the steps call: DDP-wrapped and/or compiled, or the user's module
    train_loader: Iterable[Any]  # under torchrun: this rank's share
    val_loader: Iterable[Any] | None
    distributed: Distributed | None
    distributed_info: dict[str, Any] | None  # world size, backend and hosts, for the run's info
    ddp: DistributedDataParallel | None


@dataclass(frozen=True)
class Training:
    """What :func:`set_up` hands the loop: the trainee, where it starts, and what it continues from."""

    trainee: Trainee
    state: TrainState
    resumption: Resumption | None
    # ``with`` it around training: its exit waits until the last checkpoint is on disk and in place
    checkpoints_written: AbstractContextManager[Any] = field(default_factory=nullcontext)


def prepare(inputs: TrainingInputs, point: ResumePoint | None, distributed: Distributed | None = None, seed: int = 0) -> Prepared:
    """Steps 2-4 above, for inputs that passed step 1 (:meth:`TrainingInputs.check`, which comes
    before a resume point is looked for); nothing is recorded and no file is written yet."""
    model, options = inputs.model, inputs.options
    device = select_device(options.use_gpu, options.gpu_id, distributed)
    model.to(device)
    precision = Precision.parse(options.precision)
    precision.check_device(device)
    ddp = None if distributed is None else wrap_for_ddp(model, device, options)
    stepped = compile_model(ddp or model, compile_arguments(options.compile))  # what the steps call; `model` is what is saved
    optimizers = _configure_optimizers(inputs.hooks, model, device)
    optimizers.rule = options.update_rule(precision.scaler(device))
    for monitor in optimizers.monitors():
        inputs.check_metric_name("monitor", monitor)
    state, resumption, changes = TrainState(), None, []
    if point is not None:
        changes = apply_checkpoint(point.checkpoint, model, optimizers, point.path)
        state, resumption = point.train_state(), point.resumption()
        resumption = _this_ranks_resumption(point, resumption, distributed)
    train_loader, val_loader, info = inputs.train_loader, inputs.val_loader, None
    if distributed is not None:
        info = distributed.describe()
        train_loader = shard_loader(train_loader, "train_loader", distributed, seed)  # type: ignore[assignment]
        val_loader = shard_loader(val_loader, "val_loader", distributed, seed)
        seed_everything(distributed.rank_seed(seed))  # dropout and augmentation differ per rank; rank 0's stream is kept
    return Prepared(
        inputs, device, optimizers, state, resumption, point, changes, precision, stepped, train_loader, val_loader, distributed, info,
        ddp,
    )  # fmt: skip


def wrap_for_ddp(model: torch.nn.Module, device: torch.device, options: RunOptions) -> DistributedDataParallel:
    """``DistributedDataParallel`` around the model on its device (BatchNorm synchronised if asked)."""
    if options.sync_batchnorm:
        torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=options.find_unused_parameters)


def _this_ranks_resumption(point: ResumePoint, resumption: Resumption | None, distributed: Distributed | None) -> Resumption | None:
    """Every rank continues from its own random state; another world size only at an epoch's end."""
    ranks = point.checkpoint.get("ranks")
    written_by = len(ranks) if ranks else 1
    world_size, rank = (1, 0) if distributed is None else (distributed.world_size, distributed.rank)
    position = point.checkpoint.get("position")
    if written_by != world_size:
        if position is not None:
            raise CheckpointError(
                f"{point.path} was written inside an epoch by a run with {written_by} process(es); resume it with "
                f"{written_by} (torchrun --nproc-per-node ...), or from a checkpoint written at an epoch's end"
            )
        if rank == 0:
            warn(
                f"{point.path} was written by {written_by} process(es), this run has {world_size}: it "
                f"continues from the same weights, but the data order is not the one the original run would have had"
            )
        return resumption
    if not ranks or resumption is None:
        return resumption
    own = ranks[rank]
    if resumption.position is not None:
        resumption.position.epoch_start_rng = own["epoch_start_rng"]
    return Resumption(own["rng"], resumption.position)


def set_up(
    prepared: Prepared,
    *,
    record: RunRecord,
    run_dir: RunDirectory,
    loggers: LoggerFanout,
    text_log: TextFileLogger,
) -> Training:
    """Steps 5-7 above. ``loggers`` is started here; the caller finishes it, also after a failure."""
    inputs, point, model = prepared.inputs, prepared.point, prepared.inputs.model
    config = plain_config(record.config)
    if prepared.distributed_info is not None:
        record.set_info("distributed", prepared.distributed_info)
    if point is not None:
        _record_resume(record, point, config, prepared.settings_changes, text_log)
    run_dir.write_config(config)
    run_dir.write_text("model-summary.txt", model_summary(model))
    run_dir.write_text("source.txt", source_listing(model, [*inputs.config_functions, *inputs.hooks.functions()]))
    loggers.on_start(
        RunInfo(
            run_dir=run_dir.path,
            name=run_dir.name,
            config=config,
            model=model,
            device=prepared.device,
            sacred_run_id=record.id,
            experiment_name=record.experiment_name,
            resumed=point is not None,
            start_epoch=prepared.state.epoch,
            start_step=prepared.state.global_step,
        )
    )
    store = CheckpointStore(run_dir.checkpoints, inputs.options.keep_last_epochs)
    store.remove_stale_temporaries()  # of a process killed while it wrote; this one holds the run directory
    writer = CheckpointWriter(store, model, prepared.optimizers, config, record, prepared.distributed)
    # @run.after_epoch is called "after the epoch's checkpoint is written": a hook may read or copy it.
    writer.in_place_at_epoch_end = "after_epoch" in inputs.hooks
    return _training(prepared, loggers, inputs.progress, writer, checkpoints_written=writer)


def follow(prepared: Prepared) -> Training:
    """What a rank other than 0 trains with: the same loop, no run directory, loggers or progress;
    it takes part in rank 0's checkpoints by sending its random state."""
    distributed = prepared.distributed
    assert distributed is not None and not distributed.is_main
    return _training(prepared, LoggerFanout([]), Progress(enabled=False), SendRandomState(distributed))


def _training(
    prepared: Prepared,
    loggers: LoggerFanout,
    progress: Progress,
    save_checkpoint: SaveCheckpoint,
    checkpoints_written: AbstractContextManager[Any] | None = None,
) -> Training:
    inputs = prepared.inputs
    trainee = Trainee(
        model=prepared.stepped_model,
        train_loader=prepared.train_loader,
        val_loader=prepared.val_loader,
        hooks=inputs.hooks,
        optimizers=prepared.optimizers,
        device=prepared.device,
        options=inputs.options,
        loggers=loggers,
        progress=progress,
        precision=prepared.precision,
        distributed=prepared.distributed,
        ddp=prepared.ddp,
        save_checkpoint=save_checkpoint,
        stop=StopRequest(ignore_sigterm_after_error=prepared.distributed is not None),
    )
    return Training(trainee, prepared.state, prepared.resumption, checkpoints_written or nullcontext())


def _configure_optimizers(hooks: HookRegistry, model: torch.nn.Module, device: torch.device) -> OptimizerSet:
    hook = hooks.get("configure_optimizers")
    assert hook is not None  # checked with the inputs
    return parse_optimizers(hook({"model": model, "device": device}))


def _record_resume(
    record: RunRecord,
    point: ResumePoint,
    config: dict[str, Any],
    settings_changes: list[str],
    text_log: TextFileLogger,
) -> None:
    """sacred has no resume: the new run records where it continues from, and what changed (in one warning)."""
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
    sections = [rewind] if (rewind := _rewind(point)) else []
    differences = config_differences(point.config, config)
    if differences:
        sections.append("the config of this run differs from the config of the checkpoint it resumes from:\n  " + "\n  ".join(differences))
    if settings_changes:
        sections.append(
            "configure_optimizers built optimizers or schedulers with other settings than the checkpoint's; the new "
            "settings win, and the schedules continue at the checkpoint's position as if the run had used them from "
            "its start:\n  " + "\n  ".join(settings_changes)
        )
    if sections:
        message = "\n".join(sections)
        warn(message)
        text_log.note(message)


def _rewind(point: ResumePoint) -> str | None:
    """What is trained again when the checkpoint is older than the newest one of its run directory."""
    if point.run_dir is None:
        return None
    store = CheckpointStore(point.run_dir / CHECKPOINTS)
    newest = store.newest_first()
    further = store.progress_of(newest[0]) if newest and newest[0] != point.path else None
    step = point.checkpoint["state"]["global_step"]
    if further is None or further[1] <= step:
        return None
    return (
        f"rewinding: {point.path.name} (global step {step}) is older than {newest[0].name} (epoch {further[0]}, global "
        f"step {further[1]}), so the training after global step {step} is done again; in log.txt, the lines after this "
        f"one replace those of the same epochs above"
    )


def run_directory(options: RunOptions, record: RunRecord, point: ResumePoint | None) -> RunDirectory:
    """The run's directory: a resumed run continues in its own, a new run gets a new one, numbered
    like the run's directory in the default sacred storage (see :mod:`blowtorch.rundir`)."""
    if point is not None and point.run_dir is not None:
        return RunDirectory(point.run_dir)
    name = options.run_name or (record.cli_name and run_name_from_cli(record.cli_name)) or random_run_name()
    return RunDirectory.create(Path(options.save_path).absolute(), name, record.storage_number)
