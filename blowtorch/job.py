"""One training run inside its sacred run: run directory, checks, device, optimizers, loggers, loop.

This is the main function sacred runs. Everything that goes wrong in here is written to
``log.txt`` and recorded by sacred (FAILED with its trace, INTERRUPTED on Ctrl-C).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch

from blowtorch.checkpoint import CheckpointWriter, build_checkpoint, check_finite_parameters
from blowtorch.device import select_device
from blowtorch.errors import OptionError, UsageError
from blowtorch.hooks import HookRegistry
from blowtorch.loggers.base import COMPLETED, FAILED, INTERRUPTED, BaseLogger, RunInfo
from blowtorch.loggers.fanout import LoggerFanout
from blowtorch.loggers.textfile import TextFileLogger
from blowtorch.loop import FitOptions, Trainee, fit
from blowtorch.optim import OptimizerSet, parse_optimizers
from blowtorch.progress import Progress
from blowtorch.rundir import RunDirectory, generate_slug, plain_config
from blowtorch.sacred_bridge.sink import SacredLogger
from blowtorch.state import TrainState
from blowtorch.summary import model_summary, source_listing


@dataclass(frozen=True)
class RunOptions:
    """The options of ``run(...)``, as the user passed them."""

    loggers: Sequence[BaseLogger] = ()
    max_epochs: int = 1
    use_gpu: bool = True
    gpu_id: int = 0
    resume: str | Path | None = None
    save_path: str | Path = "train_logs"
    run_name: str | None = None
    optimize_metric: str | None = None
    checkpoint_metric: str | None = None
    smaller_is_better: bool = True
    optimize_first: bool = False
    detect_anomalies: bool = False
    fit: FitOptions = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "fit",
            FitOptions(
                max_epochs=self.max_epochs,
                optimize_first=self.optimize_first,
                optimize_metric=self.optimize_metric,
                checkpoint_metric=self.checkpoint_metric,
                smaller_is_better=self.smaller_is_better,
                detect_anomalies=self.detect_anomalies,
            ),
        )


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
    ) -> None:
        self.model = model
        self.train_loader = train_loader
        self.val_loader = val_loader
        self.hooks = hooks
        self.options = options
        self.progress = progress
        self.run_dir: RunDirectory | None = None

    def __call__(self, sacred_run: Any) -> dict[str, Any]:
        name = self.options.run_name or sacred_run.meta_info["options"].get("--name") or generate_slug()
        self.run_dir = run_dir = RunDirectory.create(Path(self.options.save_path).absolute(), name, sacred_run._id)
        sacred_run.info["run_dir"] = str(run_dir.path)
        config = plain_config(sacred_run.config)
        text_log = TextFileLogger(run_dir)
        fanout: LoggerFanout | None = None
        state = TrainState()
        status = FAILED
        try:
            run_dir.write_config(config)
            self._check_inputs()
            run_dir.write_text("model-summary.txt", model_summary(self.model))
            run_dir.write_text("source.txt", source_listing(self.model, self.hooks.functions()))
            device = select_device(self.options.use_gpu, self.options.gpu_id)
            self.model.to(device)
            optimizers = self._configure_optimizers(device)
            fanout = LoggerFanout([text_log, SacredLogger(sacred_run), self.progress, *self.options.loggers])
            fanout.on_start(
                RunInfo(
                    run_dir=run_dir.path,
                    name=run_dir.name,
                    config=config,
                    model=self.model,
                    device=device,
                    sacred_run_id=sacred_run._id,
                    experiment_name=sacred_run.experiment_info["name"],
                )
            )
            checkpoints = CheckpointWriter(run_dir.checkpoints)

            def save_checkpoint(state: TrainState, metrics: Mapping[str, float], is_best: bool) -> None:
                check_finite_parameters(self.model, state.epoch)
                payload = build_checkpoint(
                    model=self.model,
                    optimizers=optimizers,
                    state=state,
                    metrics=dict(metrics),
                    config=config,
                    sacred_run_id=sacred_run._id,
                )
                checkpoints.write(payload, is_best)

            trainee = Trainee(
                self.model, self.train_loader, self.val_loader, self.hooks, optimizers, device,
                self.options.fit, fanout, self.progress, save_checkpoint,
            )  # fmt: skip
            fit(trainee, state)
            status = COMPLETED
            self._note_best(text_log, state)
            return _summary(run_dir, state)
        except KeyboardInterrupt:
            status = INTERRUPTED
            text_log.note(f"interrupted (Ctrl-C) in epoch {state.epoch} at global step {state.global_step}")
            raise
        except BaseException as error:
            text_log.note(f"failed in epoch {state.epoch} at global step {state.global_step}: {type(error).__name__}: {error}")
            raise
        finally:
            if fanout is not None:
                fanout.on_finish(status)
            else:
                text_log.on_finish(status)

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
        max_epochs = self.options.max_epochs
        if isinstance(max_epochs, bool) or not isinstance(max_epochs, int) or max_epochs < 1:
            raise OptionError(f"max_epochs must be an int >= 1 (the total number of epochs, counted from 0), got {max_epochs!r}")
        if max_epochs == 1 and not self.options.optimize_first:
            warnings.warn(
                "max_epochs=1 with optimize_first=False runs only the baseline epoch 0, which does not update the "
                "model; pass max_epochs > 1 or optimize_first=True to train",
                UserWarning,
                stacklevel=2,
            )
        for label, loader in (("train_loader", self.train_loader), ("val_loader", self.val_loader)):
            _check_loader(label, loader)

    def _configure_optimizers(self, device: torch.device) -> OptimizerSet:
        hook = self.hooks.get("configure_optimizers")
        assert hook is not None
        return parse_optimizers(hook({"model": self.model, "device": device}))

    @staticmethod
    def _note_best(text_log: TextFileLogger, state: TrainState) -> None:
        if state.best_epoch is not None:
            text_log.note(f"best {state.checkpoint_metric}={state.best_value:.6g} at epoch {state.best_epoch} (checkpoints/best.pt)")


def _check_loader(label: str, loader: Any) -> None:
    if loader is None:
        if label == "train_loader":
            raise OptionError("train_loader is None; pass a DataLoader (or any iterable of batches) to train on")
        return
    if not hasattr(loader, "__iter__"):
        raise OptionError(f"{label} must be a DataLoader or another iterable of batches, got {type(loader).__name__}")
    try:
        length = len(loader)
    except TypeError:
        return  # an iterable without a length; emptiness is checked after its first pass
    if length == 0:
        raise OptionError(f"{label} is empty (len 0); give it a dataset with at least one sample (and check drop_last)")


def _summary(run_dir: RunDirectory, state: TrainState) -> dict[str, Any]:
    return {
        "run_dir": str(run_dir.path),
        "epochs": state.epoch,
        "global_step": state.global_step,
        "checkpoint_metric": state.checkpoint_metric,
        "best_value": state.best_value,
        "best_epoch": state.best_epoch,
        "metrics": dict(state.last_metrics),
    }
