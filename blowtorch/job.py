"""One training run's life cycle: set up, train, and end with a status, notes and stored files.

A :class:`TrainingJob` is the main function of the run; it writes only to a
:class:`~blowtorch.sacred_bridge.record.RunRecord`, never to sacred itself. Everything that goes
wrong in here is written to ``log.txt`` and ends the run as FAILED (INTERRUPTED on Ctrl-C or
SIGTERM); the loggers are finished and the run directory's files stored in every case.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blowtorch.distributed import failure_of_another_rank, is_broken_collective, report_failure
from blowtorch.errors import BlowtorchError, TrainingError
from blowtorch.interrupt import Interrupted
from blowtorch.loggers.base import COMPLETED, FAILED, INTERRUPTED, RUNNING
from blowtorch.loggers.fanout import LoggerFanout
from blowtorch.loggers.textfile import TextFileLogger
from blowtorch.loop import fit
from blowtorch.run_lock import RunDirectoryLock
from blowtorch.run_status import write_status
from blowtorch.rundir import RunDirectory
from blowtorch.setup import Prepared, follow, run_directory, set_up
from blowtorch.state import TrainState
from blowtorch.user_warnings import warn

if TYPE_CHECKING:  # the record's module belongs to the sacred bridge, imported when a Run is made
    from blowtorch.sacred_bridge.record import RunRecord


class TrainingJob:
    """Called with the run's record; returns a summary that the record stores as the result."""

    def __init__(self, prepared: Prepared, resume_command: Callable[[Path], str] | None = None) -> None:
        self.prepared = prepared
        self.resume_command = resume_command or (lambda run_dir: f"run(..., resume={str(run_dir)!r})")
        self.run_dir: RunDirectory | None = None

    def __call__(self, record: RunRecord) -> dict[str, Any]:
        distributed = self.prepared.distributed
        if distributed is not None and not distributed.is_main:
            run_dir_path = Path(distributed.broadcast(None))  # where rank 0 records the run
            training = follow(self.prepared)
            try:
                with training.trainee.stop:
                    fit(training.trainee, training.state, training.resumption)
            except Exception:
                report_failure(run_dir_path, distributed.rank)
                raise
            return {}
        options = self.prepared.inputs.options
        self.run_dir = run_dir = run_directory(options, record, self.prepared.point)
        if distributed is not None:
            distributed.broadcast(str(run_dir.path))
        resumed_in_place = self.prepared.point is not None and self.prepared.point.run_dir is not None
        with nullcontext() if resumed_in_place else RunDirectoryLock(run_dir.path):  # run(...) holds a resumed one
            return self._run(record, run_dir)

    def _failure_of_another_rank(self, run_dir: RunDirectory, error: BaseException) -> tuple[int, str] | None:
        """Under torchrun, rank 0's own error is often only the broken connection to a rank that failed first."""
        if self.prepared.distributed is None or isinstance(error, (BlowtorchError, KeyboardInterrupt)):
            return None
        return failure_of_another_rank(run_dir.path)

    def _run(self, record: RunRecord, run_dir: RunDirectory) -> dict[str, Any]:
        options = self.prepared.inputs.options
        record.set_info("run_dir", str(run_dir.path))
        record.set_info("max_epochs", options.max_epochs)  # what `blowtorch runs` shows as epochs done / max
        write_status(run_dir.path, RUNNING, record.experiment_name, record.id, 0, 0, options.max_epochs)
        text_log = TextFileLogger(run_dir)
        record.watch(run_dir.path, text_log.note)
        loggers: LoggerFanout | None = None
        state = TrainState()
        status = FAILED
        training = False
        try:
            loggers = LoggerFanout([text_log, record, self.prepared.inputs.progress, *(options.loggers or ())])
            ready = set_up(
                self.prepared,
                record=record,
                run_dir=run_dir,
                loggers=loggers,
                text_log=text_log,
            )
            state = ready.state
            replaying = ready.resumption is not None and ready.resumption.position is not None
            if state.epoch >= options.max_epochs and not replaying:
                nothing_left = (
                    f"nothing left to train: epochs 0-{state.epoch - 1} are done and max_epochs={options.max_epochs} "
                    f"is the total; raise max_epochs to continue"
                )
                warn(nothing_left)
                text_log.note(nothing_left)
            training = True
            with ready.trainee.stop, ready.checkpoints_written:  # the last checkpoint is on disk when this ends
                fit(ready.trainee, state, ready.resumption)
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
                f"To resume: {self.resume_command(run_dir.path)}"
            )
            raise
        except KeyboardInterrupt:
            status = INTERRUPTED
            text_log.note(f"aborted by Ctrl-C in epoch {state.epoch} at global step {state.global_step}, without writing a checkpoint")
            raise
        except BaseException as error:
            where = f"in epoch {state.epoch} at global step {state.global_step}" if training else "before training"
            failed_elsewhere = self._failure_of_another_rank(run_dir, error)
            if failed_elsewhere is not None:
                rank, trace = failed_elsewhere
                text_log.note(f"failed {where}: rank {rank} raised (the other ranks stopped with it):\n{trace}")
                raise TrainingError(f"rank {rank} failed {where}, and the other ranks stopped with it:\n{trace}") from error
            if self.prepared.distributed is not None and is_broken_collective(error):
                reason = (
                    "another rank stopped without a Python error (killed by a signal such as SIGKILL, out of memory, or its "
                    "node was lost), or did not answer within ddp_timeout; torchrun's output names the rank and its exit "
                    f"code. The collective's error: {error}"
                )
                text_log.note(f"failed {where}: the processes of this run lost each other: {reason}")
                raise TrainingError(f"the processes of this run lost each other {where}: {reason}") from error
            text_log.note(f"failed {where}: {type(error).__name__}: {error}")
            raise
        finally:
            (loggers if loggers is not None and loggers.started else text_log).on_finish(status)
            best = _best(state)
            if best is not None:  # in the info too: a resumed run's directory keeps only its newest status.json
                record.set_info("best", best)
            write_status(
                run_dir.path, status, record.experiment_name, record.id, state.epoch, state.global_step, options.max_epochs, best
            )
            record.store_files(run_dir.path, options.checkpoints_to_upload())  # checked before the run started


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


def _best(state: TrainState) -> dict[str, Any] | None:
    """The checkpoint metric's best value so far, and its epoch; None before the first one."""
    if state.best_epoch is None:
        return None
    return {"metric": state.checkpoint_metric, "value": state.best_value, "epoch": state.best_epoch}


def _nested(qualified: dict[str, float]) -> dict[str, dict[str, float]]:
    nested: dict[str, dict[str, float]] = {}
    for key, value in qualified.items():
        phase, _, name = key.partition(".")
        nested.setdefault(phase, {})[name] = value
    return nested
