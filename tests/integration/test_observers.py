"""sacred observers around a blowtorch run: custom ones, and ids assigned by another observer."""

from __future__ import annotations

import torch
from sacred.observers import RunObserver

from blowtorch import Run
from tests.helpers import read_json, regression_loaders, sacred_run_dirs


class RecordingObserver(RunObserver):
    """A database-like observer: high priority, so it assigns the run id, and it keeps what it receives."""

    priority = 30

    def __init__(self, assign_id=None):
        self.assign_id = assign_id
        self.events: list[str] = []
        self.metrics: dict[str, list] = {}
        self.info: dict = {}

    def started_event(self, ex_info, command, host_info, start_time, config, meta_info, _id):
        self.events.append("started")
        self.config = config
        return self.assign_id

    def log_metrics(self, metrics_by_name, info):
        for name, entry in metrics_by_name.items():
            self.metrics.setdefault(name, []).extend(zip(entry["steps"], entry["values"], strict=True))

    def heartbeat_event(self, info, captured_out, beat_time, result):
        self.info = dict(info)

    def completed_event(self, stop_time, result):
        self.events.append("completed")


def train(run: Run, **options) -> dict:
    @run.train_step
    @run.validate_step
    def step(batch, model):
        return ((model(batch[0]) - batch[1]) ** 2).mean()

    @run.configure_optimizers
    def configure(model):
        return torch.optim.SGD(model.parameters(), lr=0.05)

    train_loader, val_loader = regression_loaders()
    return run(torch.nn.Linear(4, 1), train_loader, val_loader, max_epochs=2, use_gpu=False, **options)


def test_a_custom_observer_receives_the_run_and_every_epoch_metric():
    observer = RecordingObserver()
    run = Run(name="obs", argv=["t.py"], observers=[observer], random_seed=3, save_git_info=False)
    train(run)
    assert observer.events == ["started", "completed"]
    assert observer.config["seed"] == 3
    assert [step for step, _ in observer.metrics["val.loss"]] == [0, 1]
    assert observer.info["run_dir"] == str(run.run_dir)


def test_a_database_id_that_is_free_under_the_save_path_numbers_both_directories(tmp_path):
    database = RecordingObserver(assign_id=41)
    run = Run(name="db", argv=["t.py"], observers=[database], save_git_info=False)
    train(run)
    assert [p.name for p in sacred_run_dirs(tmp_path / "train_logs" / "sacred")] == ["41"]
    assert run.run_dir.name.endswith("-41")


def test_an_id_from_another_observer_never_collides_with_earlier_file_storage_runs(tmp_path):
    # An earlier run against another database already stored sacred/1 under this save path.
    train(Run(name="first", argv=["t.py"], save_git_info=False))
    assert [p.name for p in sacred_run_dirs(tmp_path / "train_logs" / "sacred")] == ["1"]

    database = RecordingObserver(assign_id=1)  # a fresh database hands out id 1 again
    run = Run(name="second", argv=["t.py"], observers=[database], save_git_info=False)
    summary = train(run)

    assert database.events == ["started", "completed"]
    stored = sacred_run_dirs(tmp_path / "train_logs" / "sacred")
    assert [p.name for p in stored] == ["1", "2"]  # the second run went to the next free directory
    assert read_json(stored[1] / "run.json")["experiment"]["name"] == "second"
    assert read_json(stored[1] / "run.json")["status"] == "COMPLETED"
    # the run directory has the number of the sacred directory; the run keeps the database's id
    assert run.run_dir.name.endswith("-2")
    assert "sacred run 1" in (run.run_dir / "log.txt").read_text()
    assert torch.load(run.run_dir / "checkpoints" / "latest.pt", weights_only=False)["sacred_run_id"] == "1"
    assert summary["epochs"] == 2
