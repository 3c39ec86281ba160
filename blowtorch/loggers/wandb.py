"""Weights & Biases: one wandb run per run directory, resumed with it, online or offline."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from blowtorch.errors import MissingExtraError
from blowtorch.loggers.base import FAILED, INTERRUPTED, BaseLogger, RunInfo, is_step_phase

ID_FILE = "wandb-run-id.txt"


class WandbLogger(BaseLogger):
    """Logs to wandb: run name = the run directory's name, files in the run directory, config = the resolved config.

    Every keyword argument goes to ``wandb.init`` (``project``, ``entity``, ``tags``, ``mode``, ...)
    and wins over blowtorch's defaults. A resumed blowtorch run continues the same wandb run: its id
    is kept in the run directory. Metrics are logged against ``epoch`` (per-epoch phases) or
    ``global_step`` (per-step phases) as wandb x axes, so wandb's own step only ever grows, also
    across validation and resumes. Works offline: ``mode="offline"`` or ``WANDB_MODE=offline``.
    """

    def __init__(self, **kwargs: Any) -> None:
        try:
            import wandb
        except ImportError as error:
            raise MissingExtraError(
                f"WandbLogger needs the wandb package ({error}); install it with pip install 'blowtorch[wandb]'"
            ) from error
        self._wandb = wandb
        self.kwargs = kwargs
        self.run: Any = None

    def on_start(self, run: RunInfo) -> None:
        wandb = self._wandb
        settings: dict[str, Any] = {"name": run.name, "dir": str(run.run_dir), "config": dict(run.config)}
        previous_id = run_id_of(run.run_dir)
        if previous_id is not None:  # this run directory logged to wandb before: continue that wandb run
            settings.update(id=previous_id, resume="allow")
        settings.update(self.kwargs)
        if settings.get("mode") != "disabled":  # a disabled wandb run needs no service
            with output_to_devnull():
                wandb.setup()  # starts the service, unless this process has one already
        self.run = wandb.init(**settings)
        if previous_id is None:
            (run.run_dir / ID_FILE).write_text(self.run.id + "\n")
        self.run.config.update(
            {"blowtorch": {"sacred_run_id": run.sacred_run_id, "run_dir": str(run.run_dir)}}, allow_val_change=True
        )
        self.run.define_metric("epoch")
        self.run.define_metric("global_step")
        for phase in ("train", "val", "lr", "amp"):  # amp: float16's skipped steps and loss scale
            self.run.define_metric(f"{phase}/*", step_metric="epoch")
        for phase in ("train_step", "lr_step"):
            self.run.define_metric(f"{phase}/*", step_metric="global_step")

    def log_metrics(self, metrics: Mapping[str, float], phase: str, epoch: int, step: int) -> None:
        row: dict[str, Any] = {f"{phase}/{name}": value for name, value in metrics.items()}
        row["global_step" if is_step_phase(phase) else "epoch"] = step if is_step_phase(phase) else epoch
        self.run.log(row)

    def on_finish(self, status: str) -> None:
        if self.run is not None:
            self.run.summary["status"] = status
            self.run.finish(exit_code={FAILED: 1, INTERRUPTED: 130}.get(status, 0))


@contextmanager
def output_to_devnull() -> Iterator[None]:
    """Points file descriptors 1 and 2 (stdout, stderr) at os.devnull for the duration.

    For starting wandb's service process (wandb-core), which inherits them and lives until this
    process ends. During a run they are sacred's capture pipes (``--capture=fd``, the default on
    Linux): a service holding them open keeps sacred's ``tee`` processes from ever seeing the end
    of their input, so at the end of every run sacred waits for them, kills them and warns
    ``tee_stdout.wait timeout. Forcibly terminating``. The service keeps its own log files, and
    wandb itself starts a detached service with its output on os.devnull. The run's own output,
    wandb's messages included, is written by this process and stays captured.
    """
    sys.stdout.flush()  # what was printed before goes where it was meant to
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


def run_id_of(run_dir: Path) -> str | None:
    """The wandb run id a run directory logs to, if it has one."""
    id_file = run_dir / ID_FILE
    return id_file.read_text().strip() if id_file.is_file() else None
