"""Runs recorded in a real MongoDB-wire server (SecantusDB, a separate process) and viewed in Omniboard."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import gridfs
import pytest
import yaml

from tests.helpers import REPO, assert_ok, only_run_dir, read_json, run_python, sacred_run_dirs, write_script

sys.path.insert(0, str(REPO / "mongo"))
from blowtorch_mongo import start_server  # noqa: E402
from blowtorch_mongo._process import free_port  # noqa: E402

SCRIPT = """
import time
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from blowtorch import Run

run = Run(random_seed=3)


@run.config
def settings():
    max_epochs = 3
    sleep = 0.0
    upload = None


@run.train_step
@run.validate_step
def step(batch, model):
    time.sleep(run["sleep"])
    x, y = batch
    logits = model(x)
    return {"loss": F.cross_entropy(logits, y), "accuracy": (logits.argmax(1) == y).float().mean()}


@run.configure_optimizers
def configure(model):
    return torch.optim.Adam(model.parameters(), lr=0.01)


g = torch.Generator().manual_seed(0)
x = torch.randn(256, 4, generator=g)
y = (x[:, 0] > 0).long()
model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
run(model, DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True), DataLoader(TensorDataset(x[:64], y[:64]), batch_size=32),
    max_epochs=run["max_epochs"], use_gpu=False, upload_checkpoints=run["upload"])
"""

ARTIFACTS = Path(os.environ.get("BLOWTORCH_TEST_ARTIFACTS", REPO / "test-artifacts"))


@pytest.fixture
def script(tmp_path):
    return write_script(tmp_path, SCRIPT)


def run_document(client, db_name, run_id=1):
    return client[db_name].runs.find_one({"_id": run_id})


def test_a_run_lands_in_mongodb_complete(tmp_path, script, mongo_server, mongo_db_name):
    result = run_python(script, "-m", mongo_server.sacred_m_arg(mongo_db_name), "-c", "first try", cwd=tmp_path)
    assert_ok(result)
    run_dir = only_run_dir(tmp_path / "train_logs")
    assert run_dir.name.endswith("-1")  # MongoDB's id 1, free in the file storage too, numbers both directories
    with mongo_server.client() as client:
        database = client[mongo_db_name]
        run = database.runs.find_one({"_id": 1})
        assert run["status"] == "COMPLETED" and run["experiment"]["name"] == "train"
        assert run["meta"]["comment"] == "first try" and run["meta"]["options"]["--mongo_db"] == mongo_server.sacred_m_arg(mongo_db_name)
        assert run["config"] == yaml.safe_load((run_dir / "config.yaml").read_text())
        assert run["info"]["run_dir"] == str(run_dir)
        files = gridfs.GridFS(database)
        [(source_name, source_id)] = run["experiment"]["sources"]
        assert source_name == "train.py" and files.get(source_id).read() == script.read_bytes()
        artifacts = {a["name"]: files.get(a["file_id"]).read() for a in run["artifacts"]}
        assert set(artifacts) == {"config.yaml", "log.txt", "model-summary.txt"}
        assert artifacts["log.txt"] == (run_dir / "log.txt").read_bytes()
        file_storage = read_json(sacred_run_dirs(tmp_path / "train_logs" / "sacred")[0] / "metrics.json")
        metrics = {m["name"]: m for m in database.metrics.find({"run_id": 1})}
        assert set(metrics) == set(file_storage) == {"train.loss", "train.accuracy", "val.loss", "val.accuracy", "lr.main"}
        for name, document in metrics.items():
            assert document["steps"] == [0, 1, 2] and document["values"] == file_storage[name]["values"]
        assert {m["name"] for m in run["info"]["metrics"]} == set(metrics)  # Omniboard joins metrics through this
        assert len(run["captured_out"]) < 5000


def test_a_full_uri_with_its_database_and_uploaded_checkpoints(tmp_path, script, mongo_server, mongo_db_name):
    uri = f"mongodb://{mongo_server.host}:{mongo_server.port}/{mongo_db_name}?retryWrites=false"
    result = run_python(script, "--mongo_uri", uri, "with", "upload=best", cwd=tmp_path)
    assert_ok(result)
    run_dir = only_run_dir(tmp_path / "train_logs")
    with mongo_server.client() as client:
        run = run_document(client, mongo_db_name)
        assert run["status"] == "COMPLETED" and run["meta"]["options"]["--mongo_uri"] == uri
        names = [a["name"] for a in run["artifacts"]]
        assert names.count("best.pt") == 1 and "latest.pt" not in names
        best = next(a for a in run["artifacts"] if a["name"] == "best.pt")
        assert gridfs.GridFS(client[mongo_db_name]).get(best["file_id"]).read() == (run_dir / "checkpoints" / "best.pt").read_bytes()
    assert not (tmp_path / "train_logs" / "sacred" / "1" / "best.pt").exists()  # not copied into the file storage


def test_four_processes_at_once_get_four_run_ids_and_lose_nothing(tmp_path, script, mongo_server, mongo_db_name):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    processes = [
        subprocess.Popen([sys.executable, str(script), "-m", mongo_server.sacred_m_arg(mongo_db_name)], cwd=tmp_path, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]  # fmt: skip
    for process in processes:
        _, err = process.communicate(timeout=240)
        assert process.returncode == 0, err
    with mongo_server.client() as client:
        runs = list(client[mongo_db_name].runs.find())
        assert sorted(r["_id"] for r in runs) == [1, 2, 3, 4] and {r["status"] for r in runs} == {"COMPLETED"}
        for run in runs:
            metrics = list(client[mongo_db_name].metrics.find({"run_id": run["_id"]}))
            assert len(metrics) == 5 and all(m["steps"] == [0, 1, 2] for m in metrics)
            assert Path(run["info"]["run_dir"]).name.endswith(f"-{run['_id']}")
    assert len([p for p in (tmp_path / "train_logs").iterdir() if p.name != "sacred"]) == 4


def test_a_server_killed_mid_run_costs_neither_training_nor_data(tmp_path, script):
    server = start_server(log_path=tmp_path / "server.log")
    try:
        process = subprocess.Popen(
            [sys.executable, str(script), "-m", server.sacred_m_arg("flaky"), "-b", "0.5", "with", "sleep=0.07", "max_epochs=10"],
            cwd=tmp_path, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        with server.client() as client:
            while not client.flaky.metrics.find_one({"name": "val.loss", "steps": 1}) and time.monotonic() < deadline:
                time.sleep(0.1)  # the database received epochs 0 and 1
        os.kill(server.pid, signal.SIGKILL)
        _, err = process.communicate(timeout=180)
    finally:
        server.stop()
    assert process.returncode == 0, err
    run_dir = only_run_dir(tmp_path / "train_logs")
    stored = sacred_run_dirs(tmp_path / "train_logs" / "sacred")[0]
    assert read_json(stored / "run.json")["status"] == "COMPLETED"
    assert read_json(stored / "metrics.json")["val.loss"]["steps"] == list(range(10))  # the file storage has everything
    log = (run_dir / "log.txt").read_text()
    assert log.count("MongoDB") == 1 and "failed while storing" in log and "file storage keep everything" in log
    assert "run ended: COMPLETED" in log
    assert list(run_dir.glob("sacred_mongo_fail_1_*.pickle"))  # the final status that could not be written


def test_an_unreachable_server_is_an_error_within_the_timeout(tmp_path, script):
    port = free_port()
    result = run_python(script, "-m", f"127.0.0.1:{port}:nowhere", cwd=tmp_path)
    assert result.returncode == 1
    # blowtorch's check answered (after its 5 s), not sacred's start, which would wait 30 s and then fail the run
    assert f"DatabaseError: cannot reach MongoDB 127.0.0.1:{port} (database 'nowhere'): ServerSelectionTimeoutError" in result.stderr
    assert "Start the server or fix the address; -u runs without observers" in result.stderr
    assert not (tmp_path / "train_logs").exists()  # training never started

    result = run_python(script, "--mongo_uri", f"mongodb://user:secret@127.0.0.1:{port}/db", cwd=tmp_path)
    assert result.returncode == 1 and f"mongodb://user:***@127.0.0.1:{port}/db (database 'db')" in result.stderr
    assert "secret" not in result.stderr


def test_ids_from_mongodb_never_collide_with_earlier_file_storage_runs(tmp_path, script, mongo_server, mongo_db_name):
    assert_ok(run_python(script, "with", "max_epochs=2", cwd=tmp_path))  # an earlier run without MongoDB: sacred/1
    result = run_python(script, "-m", mongo_server.sacred_m_arg(mongo_db_name), "with", "max_epochs=2", cwd=tmp_path)
    assert_ok(result)
    assert [p.name for p in sacred_run_dirs(tmp_path / "train_logs" / "sacred")] == ["1", "2"]
    with mongo_server.client() as client:
        run = run_document(client, mongo_db_name)
        assert run["status"] == "COMPLETED"
        # MongoDB's id stays 1; the run directory has the number of the file storage's directory
        assert Path(run["info"]["run_dir"]).name.endswith("-2")
    assert "sacred run 1" in (Path(run["info"]["run_dir"]) / "log.txt").read_text()


def test_omniboard_lists_the_run_with_its_metrics_and_plots_them(tmp_path, script, mongo_server, mongo_db_name, omniboard, page_screenshot):
    assert_ok(run_python(script, "-m", mongo_server.sacred_m_arg(mongo_db_name), "with", "max_epochs=6", cwd=tmp_path))
    board = omniboard(mongo_db_name)
    [run] = board.get_json("/Runs")
    assert run["_id"] == 1 and run["status"] == "COMPLETED" and run["config"]["max_epochs"] == 6
    metrics = board.get_json("/Metrics", query=json.dumps({"run_id": 1}))
    by_name = {m["name"]: m for m in metrics}
    assert set(by_name) == {"train.loss", "train.accuracy", "val.loss", "val.accuracy", "lr.main"}
    assert by_name["val.loss"]["steps"] == list(range(6))

    picture = page_screenshot(board.run_url(1), "omniboard-metrics.png")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    kept = shutil.copy(picture, ARTIFACTS / "omniboard-run-metrics.png")
    print(f"Omniboard screenshot of the run's metric plot: {kept}")
    assert picture.stat().st_size > 40_000  # a rendered plot, not a blank page


def test_run_takes_a_uri_and_a_database_name(tmp_path, mongo_server, mongo_db_name):
    import torch

    from blowtorch import Run
    from tests.helpers import regression_loaders

    run = Run(name="api", argv=["api.py"], random_seed=1, save_git_info=False, mongo_uri=mongo_server.uri, mongo_db_name=mongo_db_name)

    @run.train_step
    @run.validate_step
    def step(batch, model):
        return ((model(batch[0]) - batch[1]) ** 2).mean()

    run.configure_optimizers(lambda model: torch.optim.SGD(model.parameters(), lr=0.01))
    run(torch.nn.Linear(4, 1), *regression_loaders(), max_epochs=2, use_gpu=False)
    with mongo_server.client() as client:
        document = run_document(client, mongo_db_name)
        assert document["status"] == "COMPLETED" and document["experiment"]["name"] == "api"
        assert client[mongo_db_name].metrics.count_documents({"run_id": 1}) == 3  # train.loss, val.loss, lr.main
