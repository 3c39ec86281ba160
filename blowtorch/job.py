"""One training run inside its sacred run: run directory, checks, device, optimizers, loggers, loop.

This is the main function sacred runs. Everything that goes wrong in here is written to
``log.txt`` and recorded by sacred (FAILED with its trace, INTERRUPTED on Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import os
import signal
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch

from blowtorch.checkpoint import apply_checkpoint, build_checkpoint, check_finite_parameters
from blowtorch.checkpoint_files import CheckpointStore
from blowtorch.device import select_device
from blowtorch.errors import OptionError, UsageError
from blowtorch.hooks import HookRegistry
from blowtorch.interrupt import Interrupted, StopRequest
from blowtorch.loggers.base import COMPLETED, FAILED, INTERRUPTED, RunInfo
from blowtorch.loggers.fanout import LoggerFanout
from blowtorch.loggers.textfile import TextFileLogger
from blowtorch.loop import Trainee, fit
from blowtorch.optim import OptimizerSet, parse_optimizers
from blowtorch.options import RunOptions, check_loader
from blowtorch.progress import Progress
from blowtorch.resume import ResumePoint, config_differences, find_resume_point
from blowtorch.rundir import RunDirectory, generate_slug, plain_config
from blowtorch.sacred_bridge.mongo import prepare_for_run
from blowtorch.sacred_bridge.sink import SacredLogger, store_run_files
from blowtorch.state import TrainState
from blowtorch.summary import model_summary, source_listing


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


@dataclass(frozen=True)
class ResumeRequest:
    """What to resume from: a path (``run(resume=...)``) or a point already found (``--resume``)."""

    target: ResumePoint | str | Path
    from_command_line: bool

    def point(self) -> ResumePoint:
        return self.target if isinstance(self.target, ResumePoint) else find_resume_point(self.target)


class TrainingJob:
    """Called by sacred with the started sacred run; returns a summary that sacred stores as the result."""

    def __init__(
        self,
        model: Any,
        train_loader: Iterable[Any],
        val_loader: Iterable[Any] | None,
        hooks: HookRegistry,
        options: RunOptions,
        progress: Progress,
        resume: ResumeRequest | None = None,
        call_site: tuple[str, int] | None = None,
    ) -> None:
        self.model = model
        self.train_loader = train_loader
        self.val_loader = val_loader
        self.hooks = hooks
        self.options = options
        self.progress = progress
        self.resume = resume
        self.call_site = call_site  # the user's run(...) line, where set-up warnings point
        self.run_dir: RunDirectory | None = None

    def __call__(self, sacred_run: Any) -> dict[str, Any]:
        with attributed_to(self.call_site):
            point = self.resume.point() if self.resume is not None else None
        self.run_dir = run_dir = self._run_directory(sacred_run, point)
        sacred_run.info["run_dir"] = str(run_dir.path)
        text_log = TextFileLogger(run_dir)
        prepare_for_run(sacred_run.observers, run_dir.path, text_log.note)
        self._fanout: LoggerFanout | None = None
        state = TrainState()
        status = FAILED
        training = False
        try:
            with attributed_to(self.call_site):
                trainee, state = self._set_up(sacred_run, run_dir, point, text_log)
            if state.epoch >= self.options.max_epochs and state.progress is None:
                text_log.note(
                    f"nothing left to train: epochs 0-{state.epoch - 1} are done and "
                    f"max_epochs={self.options.max_epochs}; raise max_epochs to continue"
                )
            training = True
            with trainee.stop:
                fit(trainee, state, point.checkpoint["rng"] if point is not None else None)
            status = COMPLETED
            self._note_best(text_log, state)
            return _summary(run_dir, state)
        except Interrupted as interrupted:
            status = INTERRUPTED
            text_log.note(
                f"interrupted by {signal.Signals(interrupted.signal_number).name} in epoch {state.epoch} after global "
                f"step {state.global_step}; checkpoints/latest.pt holds the state to continue from.\n"
                f"To resume: python <your script> --resume {run_dir.path} (or run(..., resume='{run_dir.path}'))"
            )
            raise
        except KeyboardInterrupt:
            status = INTERRUPTED
            text_log.note(f"aborted by Ctrl-C in epoch {state.epoch} at global step {state.global_step}, without writing a checkpoint")
            raise
        except BaseException as error:
            where = f"in epoch {state.epoch} at global step {state.global_step}" if training else "before training"
            text_log.note(f"failed {where}: {type(error).__name__}: {error}")
            raise
        finally:
            if self._fanout is not None:
                self._fanout.on_finish(status)
            else:
                text_log.on_finish(status)
            try:
                uploads = self.options.checkpoints_to_upload()
            except OptionError:  # already reported as the run's error
                uploads = []
            store_run_files(sacred_run, run_dir.path, uploads)

    def _set_up(
        self, sacred_run: Any, run_dir: RunDirectory, point: ResumePoint | None, text_log: TextFileLogger
    ) -> tuple[Trainee, TrainState]:
        """Everything before the first step: files, checks, device, optimizers, checkpoint, loggers."""
        config = plain_config(sacred_run.config)
        if point is not None:
            self._record_resume(sacred_run, point, config, text_log)
        run_dir.write_config(config)
        self._check_inputs()
        run_dir.write_text("model-summary.txt", model_summary(self.model))
        run_dir.write_text("source.txt", source_listing(self.model, self.hooks.functions()))
        device = select_device(self.options.use_gpu, self.options.gpu_id)
        self.model.to(device)
        optimizers = self._configure_optimizers(device)
        state = TrainState()
        if point is not None:
            apply_checkpoint(point.checkpoint, self.model, optimizers, point.path)
            state = TrainState.resumed_from(point.checkpoint)
        self._fanout = fanout = LoggerFanout([text_log, SacredLogger(sacred_run), self.progress, *self.options.loggers])
        fanout.on_start(
            RunInfo(
                run_dir=run_dir.path,
                name=run_dir.name,
                config=config,
                model=self.model,
                device=device,
                sacred_run_id=sacred_run._id,
                experiment_name=sacred_run.experiment_info["name"],
                resumed=point is not None,
                start_epoch=state.epoch,
                start_step=state.global_step,
            )
        )
        store = CheckpointStore(run_dir.checkpoints, self.options.keep_last_epochs)

        def save_checkpoint(state: TrainState, epoch_end: bool, is_best: bool, rng: dict[str, Any]) -> None:
            check_finite_parameters(self.model, state.epoch)
            payload = build_checkpoint(
                model=self.model, optimizers=optimizers, state=state, rng=rng, config=config, sacred_run_id=sacred_run._id
            )
            store.save(payload, epoch_end=epoch_end, is_best=is_best)

        trainee = Trainee(
            self.model, self.train_loader, self.val_loader, self.hooks, optimizers, device,
            self.options.fit, fanout, self.progress, save_checkpoint, StopRequest(),
        )  # fmt: skip
        return trainee, state

    def _run_directory(self, sacred_run: Any, point: ResumePoint | None) -> RunDirectory:
        if point is not None and point.run_dir is not None:
            return RunDirectory(point.run_dir)  # a resumed run continues in its directory
        name = self.options.run_name or sacred_run.meta_info["options"].get("--name") or generate_slug()
        return RunDirectory.create(Path(self.options.save_path).absolute(), name, sacred_run._id)

    def _record_resume(self, sacred_run: Any, point: ResumePoint, config: dict[str, Any], text_log: TextFileLogger) -> None:
        """sacred has no resume: the new sacred run records where it continues from."""
        sacred_run.info["resumed_from"] = {
            "checkpoint": str(point.path),
            "parent_run_id": point.checkpoint.get("sacred_run_id"),
            "epoch": point.checkpoint["epoch"],
            "global_step": point.checkpoint["state"]["global_step"],
            "inside_epoch": point.checkpoint.get("position") is not None,
        }
        text_log.note(f"resuming from {point.description}, written by sacred run {point.checkpoint.get('sacred_run_id')}")
        differences = config_differences(point.config, config)
        if differences:
            if self.resume is not None and self.resume.from_command_line:
                intro = "resuming with command-line config updates on top of the checkpoint's config"
            else:
                intro = "the config of this run differs from the config of the checkpoint it resumes from"
            message = f"{intro}:\n  " + "\n  ".join(differences)
            warnings.warn(message, UserWarning, stacklevel=2)
            text_log.note(message)

    def _check_inputs(self) -> None:
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
        self.options.check(resuming=self.resume is not None)
        for label, loader in (("train_loader", self.train_loader), ("val_loader", self.val_loader)):
            check_loader(label, loader)

    def _configure_optimizers(self, device: torch.device) -> OptimizerSet:
        hook = self.hooks.get("configure_optimizers")
        assert hook is not None
        return parse_optimizers(hook({"model": self.model, "device": device}))

    @staticmethod
    def _note_best(text_log: TextFileLogger, state: TrainState) -> None:
        if state.best_epoch is not None:
            text_log.note(f"best {state.checkpoint_metric}={state.best_value:.6g} at epoch {state.best_epoch} (checkpoints/best.pt)")


@contextmanager
def attributed_to(site: tuple[str, int] | None) -> Iterator[None]:
    """Show warnings raised inside blowtorch at the user's ``run(...)`` line, not deep in sacred's call stack."""
    if site is None:
        yield
        return
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")  # record all; the real filters apply when they are shown again
            yield
    finally:
        for warning in caught:
            ours = warning.filename.startswith(_PACKAGE_DIR)
            filename, lineno = site if ours else (warning.filename, warning.lineno)
            warnings.warn_explicit(warning.message, warning.category, filename, lineno)


def _summary(run_dir: RunDirectory, state: TrainState) -> dict[str, Any]:
    return {
        "run_dir": str(run_dir.path),
        "epochs": state.epoch,
        "global_step": state.global_step,
        "checkpoint_metric": state.checkpoint_metric,
        "best_value": state.best_value,
        "best_epoch": state.best_epoch,
        # nested, not "train.loss": MongoDB stores the result, and its keys may not contain '.'
        "metrics": _nested(state.last_metrics),
    }


def _nested(qualified: dict[str, float]) -> dict[str, dict[str, float]]:
    nested: dict[str, dict[str, float]] = {}
    for key, value in qualified.items():
        phase, _, name = key.partition(".")
        nested.setdefault(phase, {})[name] = value
    return nested
