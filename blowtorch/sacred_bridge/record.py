"""The run record: what a training job tells the world about its run, and the one way it does so.

A job never touches sacred's run object. It writes to a :class:`RunRecord`: the run's id and
names, its resolved config, ``info`` entries, scalar metrics, and the files to store when the run
ends. :class:`SacredRecord` hands all of that to a started sacred run and so to every observer;
the base class records nothing, for a process that owns no sacred run (a rank above 0 under
torchrun) and for tests of the job and the loop without sacred.

The record is also a logger in the fan-out: the metrics every other sink receives reach the
observers as ``<phase>.<name>`` scalars, on the epoch axis (per-step phases: the global step).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from blowtorch.loggers.base import BaseLogger, is_step_phase
from blowtorch.rundir import CHECKPOINTS
from blowtorch.user_warnings import warn

#: The run directory's small files, stored with every recorded run.
RUN_FILES = ("config.yaml", "log.txt", "model-summary.txt")


class RunRecord(BaseLogger):
    """A run that is recorded nowhere; :class:`SacredRecord` is the one that records."""

    def __init__(self, config: Mapping[str, Any], experiment_name: str = "unrecorded") -> None:
        self._config = dict(config)
        self._experiment_name = experiment_name

    @property
    def id(self) -> Any:
        """The run's id (sacred's ``_id``: an int from MongoDB, a str from file storage); None if unrecorded."""
        return None

    @property
    def experiment_name(self) -> str:
        return self._experiment_name

    @property
    def cli_name(self) -> str | None:
        """The name given with sacred's ``-n NAME``, if any."""
        return None

    @property
    def storage_number(self) -> int | None:
        """The number of the run's directory in the default file storage ``<save_path>/sacred/``; None if
        that storage does not record the run. The run directory gets the same number."""
        return None

    @property
    def config(self) -> dict[str, Any]:
        """The resolved config, ``seed`` included."""
        return self._config

    @property
    def command_line(self) -> dict[str, Any]:
        """The named configs and ``with`` updates the config was resolved with; ``--resume`` repeats them."""
        return {"named_configs": [], "config_updates": {}}

    def set_info(self, key: str, value: Any) -> None:
        """An entry of the run's ``info`` (sent to the observers with every heartbeat)."""

    def log_scalar(self, name: str, value: float, step: int) -> None:
        """One value of a metric named ``<phase>.<name>``."""

    def watch(self, run_dir: Path, note: Callable[[str], None]) -> None:
        """The run directory exists: database outages are reported to ``note``, failure dumps go into it."""

    def store_files(self, run_dir: Path, checkpoints: Sequence[str]) -> None:
        """At the end: the run directory's small files, and the named checkpoints for the databases."""

    def log_metrics(self, metrics: Mapping[str, float], phase: str, epoch: int, step: int) -> None:
        x = step if is_step_phase(phase) else epoch
        for name, value in metrics.items():
            # Python floats only: sacred hands tensors through unconverted and they poison observers.
            self.log_scalar(f"{phase}.{name}", float(value), x)


class SacredRecord(RunRecord):
    """The record of a started sacred run: everything reaches sacred and its observers."""

    def __init__(self, sacred_run: Any) -> None:
        super().__init__(sacred_run.config, sacred_run.experiment_info["name"])
        self._run = sacred_run

    @property
    def id(self) -> Any:
        return self._run._id

    @property
    def cli_name(self) -> str | None:
        return self._run.meta_info["options"].get("--name") or None

    @property
    def command_line(self) -> dict[str, Any]:
        meta = self._run.meta_info
        return {"named_configs": list(meta.get("named_configs", ())), "config_updates": dict(meta.get("config_updates") or {})}

    @property
    def storage_number(self) -> int | None:
        from blowtorch.sacred_bridge.observers import DefaultFileStorageObserver

        # sacred calls every observer's started_event before the main function, so the number is known
        storages = [o for o in self._run.observers if isinstance(o, DefaultFileStorageObserver)]
        return storages[0].number if storages else None

    def set_info(self, key: str, value: Any) -> None:
        self._run.info[key] = value

    def log_scalar(self, name: str, value: float, step: int) -> None:
        self._run.log_scalar(name, value, step)

    def watch(self, run_dir: Path, note: Callable[[str], None]) -> None:
        from blowtorch.sacred_bridge.mongo import prepare_for_run

        prepare_for_run(self._run.observers, run_dir, note)

    def store_files(self, run_dir: Path, checkpoints: Sequence[str]) -> None:
        """Small files as artifacts of every observer; checkpoints (possibly gigabytes, and already in
        the run directory) in the databases only."""
        from sacred.observers import MongoObserver

        for name in RUN_FILES:
            if (run_dir / name).is_file():
                self._run.add_artifact(str(run_dir / name), name)
        for which in checkpoints:
            path = run_dir / CHECKPOINTS / f"{which}.pt"
            if not path.is_file():
                continue
            for observer in self._run.observers:
                if isinstance(observer, MongoObserver) and observer not in self._run._failed_observers:
                    try:
                        observer.artifact_event(path.name, str(path), {"checkpoint": which}, "application/octet-stream")
                    except Exception as error:  # reported by the observer; the run itself is done
                        warn(f"could not upload {path.name} to MongoDB: {type(error).__name__}: {error}", RuntimeWarning)
