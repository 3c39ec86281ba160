"""One training run's life cycle: set up, train, and end with a status, notes and stored files.

A :class:`TrainingJob` is the main function of the run; it writes only to a
:class:`~blowtorch.sacred_bridge.record.RunRecord`, never to sacred itself. Everything that goes
wrong in here is written to ``log.txt`` and ends the run as FAILED (INTERRUPTED on Ctrl-C or
SIGTERM); the loggers are finished and the run directory's files stored in every case.
"""

from __future__ import annotations

import os
import signal
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blowtorch.errors import OptionError
from blowtorch.interrupt import Interrupted
from blowtorch.loggers.base import COMPLETED, FAILED, INTERRUPTED
from blowtorch.loggers.fanout import LoggerFanout
from blowtorch.loggers.textfile import TextFileLogger
from blowtorch.loop import fit
from blowtorch.resume import ResumePoint, find_resume_point
from blowtorch.rundir import RunDirectory
from blowtorch.sacred_bridge.record import RunRecord
from blowtorch.setup import TrainingInputs, run_directory, set_up
from blowtorch.state import TrainState

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


@dataclass(frozen=True)
class ResumeRequest:
    """What to resume from: a path (``run(resume=...)``) or a point already found (``--resume``)."""

    target: ResumePoint | str | Path
    from_command_line: bool

    def point(self) -> ResumePoint:
        return self.target if isinstance(self.target, ResumePoint) else find_resume_point(self.target)


class TrainingJob:
    """Called with the run's record; returns a summary that the record stores as the result."""

    def __init__(
        self, inputs: TrainingInputs, resume: ResumeRequest | None = None, call_site: tuple[str, int] | None = None
    ) -> None:
        self.inputs = inputs
        self.resume = resume
        self.call_site = call_site  # the user's run(...) line, where set-up warnings point
        self.run_dir: RunDirectory | None = None

    def __call__(self, record: RunRecord) -> dict[str, Any]:
        options = self.inputs.options
        with attributed_to(self.call_site):
            point = self.resume.point() if self.resume is not None else None
        self.run_dir = run_dir = run_directory(options, record, point)
        record.set_info("run_dir", str(run_dir.path))
        text_log = TextFileLogger(run_dir)
        record.watch(run_dir.path, text_log.note)
        loggers: LoggerFanout | None = None
        state = TrainState()
        status = FAILED
        training = False
        try:
            loggers = LoggerFanout([text_log, record, self.inputs.progress, *(options.loggers or ())])
            with attributed_to(self.call_site):
                prepared = set_up(
                    self.inputs,
                    record=record,
                    run_dir=run_dir,
                    point=point,
                    loggers=loggers,
                    text_log=text_log,
                    resume_from_command_line=self.resume is not None and self.resume.from_command_line,
                )
            state = prepared.state
            replaying = prepared.resumption is not None and prepared.resumption.position is not None
            if state.epoch >= options.max_epochs and not replaying:
                text_log.note(
                    f"nothing left to train: epochs 0-{state.epoch - 1} are done and "
                    f"max_epochs={options.max_epochs}; raise max_epochs to continue"
                )
            training = True
            with prepared.trainee.stop:
                fit(prepared.trainee, state, prepared.resumption)
            status = COMPLETED
            if state.best_epoch is not None:
                text_log.note(
                    f"best {state.checkpoint_metric}={state.best_value:.6g} at epoch {state.best_epoch} (checkpoints/best.pt)"
                )
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
            (loggers if loggers is not None and loggers.started else text_log).on_finish(status)
            try:
                uploads = options.checkpoints_to_upload()
            except OptionError:  # already reported as the run's error
                uploads = []
            record.store_files(run_dir.path, uploads)


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
