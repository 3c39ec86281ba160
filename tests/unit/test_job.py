"""The job runs the same code without a sacred run: a record that keeps nothing (as a rank above 0 will)."""

from __future__ import annotations

import sys

import pytest
import torch

from blowtorch import MissingExtraError
from blowtorch.hooks import HookRegistry
from blowtorch.job import TrainingJob
from blowtorch.loggers.progress import Progress
from blowtorch.options import RunOptions
from blowtorch.sacred_bridge.record import RunRecord
from blowtorch.setup import TrainingInputs, prepare
from tests.helpers import regression_loaders


class ListRecord(RunRecord):
    """A record that keeps what it is given, to see what the job reports."""

    def __init__(self, config):
        super().__init__(config, "listed")
        self.info, self.scalars, self.stored = {}, [], []

    def set_info(self, key, value):
        self.info[key] = value

    def log_scalar(self, name, value, step):
        self.scalars.append((name, step, value))

    def store_files(self, run_dir, checkpoints):
        self.stored.append(sorted(p.name for p in run_dir.iterdir()))


def job(tmp_path, **options) -> TrainingJob:
    hooks = HookRegistry()
    hooks.register("train_step", lambda batch, model: ((model(batch[0]) - batch[1]) ** 2).mean())
    hooks.register("validate_step", lambda batch, model: ((model(batch[0]) - batch[1]) ** 2).mean())
    hooks.register("configure_optimizers", lambda model: torch.optim.SGD(model.parameters(), lr=0.1))
    train, val = regression_loaders()
    inputs = TrainingInputs(
        model=torch.nn.Linear(4, 1), train_loader=train, val_loader=val, hooks=hooks,
        options=RunOptions(max_epochs=2, use_gpu=False, save_path=tmp_path / "runs", run_name="plain", **options),
        progress=Progress(enabled=False),
    )  # fmt: skip
    inputs.check(resuming=False)
    return TrainingJob(prepare(inputs, point=None))


def test_a_job_without_sacred_writes_its_run_directory_and_reports_to_its_record(tmp_path):
    record = ListRecord({"seed": 5, "lr": 0.1})
    summary = job(tmp_path)(record)
    run_dir = tmp_path / "runs" / summary["run_dir"].rsplit("/", 1)[1]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [run_dir.name]  # no sacred/ file storage
    assert run_dir.name.endswith("-plain-1")
    assert {"config.yaml", "log.txt", "model-summary.txt", "source.txt", "checkpoints"} <= {p.name for p in run_dir.iterdir()}
    assert f"run {run_dir.name} started: experiment 'listed', unobserved" in (run_dir / "log.txt").read_text()
    assert record.info["run_dir"] == str(run_dir)
    assert [(name, step) for name, step, _ in record.scalars if name == "val.loss"] == [("val.loss", 0), ("val.loss", 1)]
    assert record.stored and "log.txt" in record.stored[0]
    checkpoint = torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=True)
    assert checkpoint["config"] == {"seed": 5, "lr": 0.1} and checkpoint["sacred_run_id"] is None


def test_the_plain_record_keeps_nothing(tmp_path):
    record = RunRecord({"seed": 1})
    job(tmp_path)(record)  # every call of the job goes to the record, none fails
    assert record.id is None and record.cli_name is None and record.config == {"seed": 1}


def test_mongodb_without_pymongo_names_the_extra(monkeypatch):
    from blowtorch.sacred_bridge.observers import database_observers

    for name in list(sys.modules):
        if name == "pymongo" or name.startswith("pymongo."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "pymongo", None)  # as if it were not installed
    with pytest.raises(MissingExtraError, match=r"pip install 'blowtorch\[mongo\]'"):
        database_observers("localhost:27017:sacred", (), None, 1.0)
    with pytest.raises(MissingExtraError, match=r"pip install 'blowtorch\[mongo\]'"):
        database_observers(None, ("mongodb://localhost/db",), None, 1.0)
