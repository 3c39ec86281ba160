"""``blowtorch push``: runs from the file storage into the real MongoDB-wire server (SecantusDB), compared with
the record sacred's MongoObserver wrote live; pushed again; completed after a server died; shown by Omniboard."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import gridfs
import pytest

from tests.helpers import REPO, assert_ok, read_json, run_python, write_script
from tests.integration.cli_runs import MAKE_RUNS

sys.path.insert(0, str(REPO / "mongo"))
from blowtorch_mongo import start_server  # noqa: E402
from blowtorch_mongo._process import free_port  # noqa: E402

ARTIFACTS = Path(os.environ.get("BLOWTORCH_TEST_ARTIFACTS", REPO / "test-artifacts"))


def record(database, run_id) -> tuple[dict, dict, dict | None]:
    """A run's document (GridFS files as their contents, metric references as names, no _id), its metrics,
    and what the document says about being pushed."""
    files = gridfs.GridFS(database)
    document = database.runs.find_one({"_id": run_id})
    assert document is not None, f"no run {run_id} in {database.name}"
    document.pop("_id")
    pushed = document.pop("pushed", None)
    document["experiment"]["sources"] = [[name, files.get(i).read()] for name, i in document["experiment"]["sources"]]
    document["artifacts"] = [[a["name"], files.get(a["file_id"]).read()] for a in document["artifacts"]]
    document["info"]["metrics"] = [m["name"] for m in document["info"].get("metrics", [])]
    metrics = {m["name"]: (m["steps"], m["values"], m["timestamps"]) for m in database.metrics.find({"run_id": run_id})}
    return document, metrics, pushed


def contents(database) -> dict:
    """Everything in a database, to see that a command changed nothing."""
    return {name: list(database[name].find().sort("_id", 1)) for name in ("runs", "metrics", "fs.files", "fs.chunks")}


@pytest.fixture
def second_db(mongo_server):
    name = f"bt_{uuid.uuid4().hex[:16]}"
    yield name
    with mongo_server.client() as client:
        client.drop_database(name)


def test_a_pushed_run_equals_its_live_record_and_a_second_push_changes_nothing(
    tmp_path, mongo_server, mongo_db_name, second_db, blowtorch_command
):
    script = write_script(tmp_path, MAKE_RUNS)
    assert_ok(run_python(script, f"-n live -c 'live and offline' -m {mongo_server.sacred_m_arg(mongo_db_name)}", cwd=tmp_path))
    run_dir = next(p for p in (tmp_path / "train_logs").iterdir() if p.name.endswith("-live-1"))
    # The run's own file storage record, pushed into a second database: the same run, recorded twice.
    result = blowtorch_command("push", "live", "-m", mongo_server.sacred_m_arg(second_db), cwd=tmp_path)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    where = f"{mongo_server.host}:{mongo_server.port} (database '{second_db}')"
    assert result.stdout == f"pushed {run_dir.name} (sacred run 1) to {where} as run 1\n"
    with mongo_server.client() as client:
        live, live_metrics, _ = record(client[mongo_db_name], 1)
        pushed, pushed_metrics, provenance = record(client[second_db], 1)
        assert pushed == live  # field by field: config, host, meta, status, times, result, info, captured output, files
        assert pushed_metrics == live_metrics and "train_step.loss" in pushed_metrics
        assert pushed["status"] == "COMPLETED" and pushed["meta"]["comment"] == "live and offline"
        assert pushed["info"]["metrics"][:3] == ["train_step.loss", "train_step.mae", "lr_step.main"]  # the order first logged
        assert provenance | {"at": None} == {
            "file_storage": str(tmp_path / "train_logs" / "sacred" / "1"), "run_dir": str(run_dir), "how": "push", "at": None,
            "by_host": pushed["host"]["hostname"],
        }  # fmt: skip
        before = contents(client[second_db])

        again = blowtorch_command("push", str(run_dir), "-m", mongo_server.sacred_m_arg(second_db), cwd=tmp_path)
        assert again.returncode == 0 and again.stdout == f"{run_dir.name} (sacred run 1) is already in {where} as run 1: nothing to push\n"
        assert contents(client[second_db]) == before
        live_db = blowtorch_command("push", "live", "-m", mongo_server.sacred_m_arg(mongo_db_name), cwd=tmp_path)
        assert live_db.returncode == 0 and "is already in" in live_db.stdout  # recorded live: found, not duplicated
        assert client[mongo_db_name].runs.count_documents({}) == 1
    [entry] = read_json(run_dir / "pushed.json")
    assert entry | {"at": None} == {"sacred_id": "1", "database": where, "mongo_id": 1, "how": "push", "at": None}


def test_offline_runs_chains_failures_and_killed_runs_are_pushed_and_bad_ones_named(
    cli_runs, tmp_path, mongo_server, mongo_db_name, blowtorch_command
):
    runs = cli_runs.copy(tmp_path / "copy")
    (runs.save_path / "sacred" / "2" / "metrics.json").write_text('{"val.loss": ')
    arguments = ["delta", "gamma", "epsilon", "beta", "nothing", "eta", "-s", str(runs.save_path)]
    result = blowtorch_command("push", *arguments, "-m", mongo_server.sacred_m_arg(mongo_db_name), cwd=tmp_path)
    assert result.returncode == 1
    where = f"{mongo_server.host}:{mongo_server.port} (database '{mongo_db_name}')"
    name = {key: path.name for key, path in runs.dirs.items()}
    assert result.stdout.splitlines() == [
        f"pushed {name['delta']} (sacred run 4) to {where} as run 1",
        f"pushed {name['delta']} (sacred run 5) to {where} as run 2",
        f"pushed {name['delta']} (sacred run 6) to {where} as run 3",
        f"pushed {name['gamma']} (sacred run 3) to {where} as run 4",
        f"pushed {name['eta']} (sacred run 8) to {where} as run 5 (killed: RUNNING, as sacred recorded it)",
    ]
    errors = result.stderr.splitlines()
    assert errors[0].startswith(f"blowtorch push: no run 'nothing' in {runs.save_path}; its runs (newest first): ")
    assert errors[1] == (
        f"blowtorch push: {name['epsilon']} has no sacred record to push: it was started with -u, or killed before sacred stored it"
    )
    assert errors[2].startswith(f"blowtorch push: {name['beta']} (sacred run 2) is not pushed: sacred/2/metrics.json cannot be read: ")
    assert len(errors) == 3

    sacred = runs.save_path / "sacred"
    with mongo_server.client() as client:
        database = client[mongo_db_name]
        for mongo_id, sacred_id in ((1, 4), (2, 5), (3, 6), (4, 3), (5, 8)):
            document, metrics, provenance = record(database, mongo_id)
            stored = read_json(sacred / str(sacred_id) / "run.json")
            assert document["status"] == stored["status"] and document["config"] == read_json(sacred / str(sacred_id) / "config.json")
            assert document["meta"] == stored["meta"] and document["host"] == stored["host"]
            assert document["experiment"]["sources"] == [["train.py", (runs.base / "train.py").read_bytes()]]
            assert provenance["file_storage"] == str(sacred / str(sacred_id))
            on_disk = read_json(sacred / str(sacred_id) / "metrics.json") if (sacred / str(sacred_id) / "metrics.json").exists() else {}
            assert {k: (v[0], v[1]) for k, v in metrics.items()} == {k: (m["steps"], m["values"]) for k, m in on_disk.items()}
            assert [a[0] for a in document["artifacts"]] == stored["artifacts"]
        assert record(database, 2)[0]["meta"]["comment"] == "resumed from run 4 at epoch 1"
        assert record(database, 3)[0]["meta"]["comment"] == "the last epoch"
        assert record(database, 4)[0]["fail_trace"] == read_json(sacred / "3" / "run.json")["fail_trace"]
        assert "RuntimeError: a failure for the test" in "".join(record(database, 4)[0]["fail_trace"])
        assert database.runs.count_documents({}) == 5


def test_update_completes_a_record_whose_server_was_killed_mid_run(tmp_path, blowtorch_command):
    script = write_script(tmp_path, MAKE_RUNS)
    storage, port = tmp_path / "database", free_port()
    server = start_server(port, storage, log_path=tmp_path / "server.log")
    try:
        process = subprocess.Popen(
            # -b 0.5: sacred's heartbeat, which carries the metrics to the observers, every half second
            [sys.executable, str(script), f"-n flaky -m {server.sacred_m_arg('flaky')} -b 0.5 with sleep=0.04 max_epochs=8"],
            cwd=tmp_path, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        with server.client() as client:
            while not client.flaky.metrics.find_one({"name": "val.loss", "steps": 1}) and time.monotonic() < deadline:
                time.sleep(0.1)  # the database received epochs 0 and 1
        os.kill(server.pid, signal.SIGKILL)
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        assert "failed while storing" in (_dir(tmp_path, "flaky") / "log.txt").read_text()  # it noticed, mid-run
        server.stop()
        server = start_server(port, storage, log_path=tmp_path / "server-again.log")  # the data it had kept
        with server.client() as client:
            # Incomplete: RUNNING, and without the metrics it missed (it may also have lost its last writes)
            assert client.flaky.runs.find_one({"_id": 1})["status"] == "RUNNING" and client.flaky.runs.count_documents({}) == 1

        m_arg = server.sacred_m_arg("flaky")
        refused = blowtorch_command("push", "flaky", "-m", m_arg, cwd=tmp_path)
        where = f"127.0.0.1:{port} (database 'flaky')"
        assert refused.returncode == 1 and refused.stdout == ""
        assert refused.stderr.startswith(f"blowtorch push: {_dir(tmp_path, 'flaky').name} (sacred run 1) is already in {where} as run 1, ")
        assert refused.stderr.rstrip().endswith("metric values; artifacts config.yaml, log.txt, model-summary.txt); --update completes it")

        updated = blowtorch_command("push", "flaky", "-m", m_arg, "--update", cwd=tmp_path)
        assert updated.returncode == 0, updated.stderr
        assert updated.stdout.startswith(f"completed run 1 in {where} with {_dir(tmp_path, 'flaky').name} (sacred run 1): status RUNNING")
        stored = tmp_path / "train_logs" / "sacred" / "1"
        with server.client() as client:
            document, metrics, provenance = record(client.flaky, 1)  # the same id: completed, not pushed again
            assert client.flaky.runs.count_documents({}) == 1 and provenance["how"] == "update"
            run_json = read_json(stored / "run.json")
            assert document["status"] == "COMPLETED" and document["result"] == run_json["result"]
            assert document["captured_out"] == (stored / "cout.txt").read_text()
            assert document["info"]["best"] == read_json(stored / "info.json")["best"]
            assert {k: (v[0], v[1]) for k, v in metrics.items()} == {
                k: (m["steps"], m["values"]) for k, m in read_json(stored / "metrics.json").items()
            }
            assert metrics["val.loss"][0] == list(range(8))
            assert sorted(document["info"]["metrics"]) == sorted(metrics)
            assert [name for name, _ in document["artifacts"]] == ["config.yaml", "log.txt", "model-summary.txt"]
            again = blowtorch_command("push", "flaky", "-m", m_arg, "--update", cwd=tmp_path)
            assert again.returncode == 0 and again.stdout.endswith("is already in " + where + " as run 1: nothing to push\n")
    finally:
        server.stop()


def test_omniboard_lists_a_pushed_run_with_its_metrics_and_plots_them(
    cli_runs, tmp_path, mongo_server, mongo_db_name, omniboard, page_screenshot, blowtorch_command
):
    runs = cli_runs.copy(tmp_path / "copy")
    result = blowtorch_command("push", "alpha", "--mongo_uri", f"{mongo_server.uri}".replace("/?", f"/{mongo_db_name}?"), cwd=runs.base)
    assert result.returncode == 0, result.stderr
    board = omniboard(mongo_db_name)
    [run] = board.get_json("/Runs")
    assert run["_id"] == 1 and run["status"] == "COMPLETED" and run["config"]["lr"] == 0.05
    by_name = {m["name"]: m for m in board.get_json("/Metrics", query=json.dumps({"run_id": 1}))}
    stored = read_json(runs.save_path / "sacred" / "1" / "metrics.json")
    assert set(by_name) == set(stored) and by_name["val.loss"]["steps"] == [0, 1, 2]
    assert by_name["val.loss"]["values"] == stored["val.loss"]["values"]

    picture = page_screenshot(board.run_url(1), "omniboard-pushed-run.png")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    kept = shutil.copy(picture, ARTIFACTS / "omniboard-pushed-run-metrics.png")
    print(f"Omniboard screenshot of a pushed run's metric plot: {kept}")
    assert picture.stat().st_size > 40_000  # a rendered plot, not a blank page


def test_an_unreachable_database_or_a_bad_address_is_one_line(cli_runs, blowtorch_command):
    port = free_port()
    result = blowtorch_command("push", "alpha", "-m", f"127.0.0.1:{port}:nowhere", "--timeout", "1", cwd=cli_runs.base)
    assert result.returncode == 1 and result.stdout == "" and len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"blowtorch push: cannot reach MongoDB 127.0.0.1:{port} (database 'nowhere'): ServerSelection")
    assert result.stderr.endswith("Start the server or fix the address; --timeout sets how long to wait\n")

    uri = f"mongodb://user:secret@127.0.0.1:{port}/runs?authSource=admin"
    result = blowtorch_command("push", "alpha", "--mongo_uri", uri, "--timeout", "1", cwd=cli_runs.base)
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1
    assert f"cannot reach MongoDB mongodb://user:***@127.0.0.1:{port}/runs?authSource=admin (database 'runs')" in result.stderr
    assert "secret" not in result.stderr

    result = blowtorch_command("push", "alpha", "-m", "mongodb://127.0.0.1/db", cwd=cli_runs.base)
    assert result.returncode == 1
    assert result.stderr == (
        "blowtorch push: -m 'mongodb://127.0.0.1/db' is not of the form [host:port:]db[.collection]; for a mongodb:// URI "
        "use --mongo_uri\n"
    )
    result = blowtorch_command("push", "alpha", cwd=cli_runs.base)
    assert result.returncode == 2 and "one of the arguments -M/--mongo_uri -m/--mongo_db is required" in result.stderr


def _dir(base: Path, run_name: str) -> Path:
    return next(p for p in (base / "train_logs").iterdir() if p.name[20:].rsplit("-", 1)[0] == run_name)
