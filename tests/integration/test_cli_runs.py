"""``blowtorch runs``: real runs (completed, failed, interrupted and resumed, -u, killed) listed by the command."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys

import torch

from tests.helpers import REPO, read_json


def parse_table(text: str) -> list[dict[str, str]]:
    """The rows of an aligned table as dicts, cut at the columns' header offsets."""
    header, *lines = text.splitlines()
    names = header.split("  ")
    names = [n.strip() for n in names if n.strip()]
    starts = [header.index(name) for name in names]
    ends = [*starts[1:], None]
    return [{name: line[a:b].strip() for name, a, b in zip(names, starts, ends, strict=True)} for line in lines]


def test_every_run_is_listed_newest_first_with_its_status_progress_and_chain(cli_runs, blowtorch_command):
    result = blowtorch_command("runs", str(cli_runs.save_path), cwd=cli_runs.base)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    rows = parse_table(result.stdout)
    assert [(r["RUN"], r["ID"], r["STATUS"], r["EPOCHS"], r["RESUMED FROM"]) for r in rows] == [
        (cli_runs.dirs["zeta"].name, "9", "DEAD?", "2/3", "-"),  # SIGKILL after two epochs: no process holds it
        (cli_runs.dirs["eta"].name, "8", "DEAD?", "0/3", "-"),  # SIGKILL before its first epoch
        (cli_runs.dirs["epsilon"].name, "-", "COMPLETED", "3/3", "-"),  # -u: no sacred id
        (cli_runs.dirs["delta"].name, "4", "INTERRUPTED", "1/3", "-"),  # the chain: its first run ...
        ("`- resumed", "5", "INTERRUPTED", "3/4", "run 4 at epoch 1"),  # ... and its continuations, right below
        ("`- resumed", "6", "COMPLETED", "4/4", "run 5 at epoch 3"),
        (cli_runs.dirs["gamma"].name, "3", "FAILED", "1/3", "-"),
        (cli_runs.dirs["beta"].name, "2", "COMPLETED", "2/2", "-"),
        (cli_runs.dirs["alpha"].name, "1", "COMPLETED", "3/3", "-"),
    ]
    sacred = cli_runs.save_path / "sacred"
    by_id = {r["ID"]: r for r in rows}
    alpha_result = read_json(sacred / "1" / "run.json")["result"]
    assert by_id["1"]["BEST"] == f"val.loss {alpha_result['best_value']:.4g} @ {alpha_result['best_epoch']}"
    state = torch.load(cli_runs.dirs["zeta"] / "checkpoints" / "latest.pt", weights_only=True)["state"]
    assert by_id["9"]["BEST"] == f"val.loss {state['best_value']:.4g} @ 1"  # the killed run's checkpoint has it
    assert by_id["8"]["BEST"] == "-"
    assert by_id["1"]["HOST"] == read_json(sacred / "1" / "run.json")["host"]["hostname"]
    start = dt.datetime.fromisoformat(read_json(sacred / "2" / "run.json")["start_time"]).replace(tzinfo=dt.timezone.utc)
    assert by_id["2"]["STARTED"] == start.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    assert all(r["DURATION"].count(":") == 2 for r in rows)


def test_json_records_hold_the_same_runs_and_the_chain(cli_runs, blowtorch_command):
    result = blowtorch_command("runs", "--json", cwd=cli_runs.base)  # SAVE_PATH defaults to train_logs
    assert result.returncode == 0, result.stderr
    records = {r["run_name"]: r for r in json.loads(result.stdout)}
    assert list(records) == ["zeta", "eta", "epsilon", "delta", "gamma", "beta", "alpha"]
    delta = records["delta"]
    assert delta["run_dir"] == str(cli_runs.dirs["delta"]) and delta["status"] == "COMPLETED" and delta["epochs"] == 4
    assert [(r["sacred_id"], r["status"], r["epochs"], r["max_epochs"], r["comment"]) for r in delta["runs"]] == [
        ("4", "INTERRUPTED", 1, 3, None),
        ("5", "INTERRUPTED", 3, 4, "resumed from run 4 at epoch 1"),  # sacred's meta.comment: Omniboard's notes
        ("6", "COMPLETED", 4, 4, "the last epoch"),  # -c: the user's own comment wins
    ]
    assert delta["runs"][1]["resumed_from"] | {"checkpoint": None} == {
        "checkpoint": None, "parent_run_id": "4", "epoch": 1, "global_step": 7, "inside_epoch": True,
    }  # fmt: skip
    assert delta["runs"][1]["resumed_from"]["checkpoint"] == str(cli_runs.dirs["delta"] / "checkpoints" / "latest.pt")
    result_of_6 = read_json(cli_runs.save_path / "sacred" / "6" / "run.json")["result"]
    assert delta["best"] == {"metric": "val.loss", "value": result_of_6["best_value"], "epoch": result_of_6["best_epoch"]}
    assert records["epsilon"]["runs"] == [records["epsilon"]["runs"][0] | {"sacred_id": None, "host": None}]
    assert records["gamma"]["status"] == "FAILED" and records["eta"]["status"] == "DEAD?"
    assert all(r["problems"] == [] for r in records.values())


def test_filters_by_status_name_glob_and_count(cli_runs, blowtorch_command):
    def names(*args):
        result = blowtorch_command("runs", str(cli_runs.save_path), "--json", *args, cwd=cli_runs.base)
        assert result.returncode == 0, result.stderr
        return [r["run_name"] for r in json.loads(result.stdout)]

    assert names("--status", "completed", "--status", "FAILED") == ["epsilon", "delta", "gamma", "beta", "alpha"]
    assert names("--status", "dead") == ["zeta", "eta"]
    assert names("--name", "e*") == ["eta", "epsilon"]
    assert names("--last", "2", "--status", "COMPLETED") == ["epsilon", "delta"]


def test_a_running_status_is_judged_by_the_heartbeat_for_a_run_of_another_machine(cli_runs, blowtorch_command, tmp_path):
    runs = cli_runs.copy(tmp_path / "copy")
    record = runs.save_path / "sacred" / "9" / "run.json"
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)

    def status_with(heartbeat: dt.datetime) -> str:
        run = read_json(record) | {"heartbeat": heartbeat.isoformat()}
        run["host"]["hostname"] = "a-node-elsewhere"  # its directory's lock says nothing about a process there
        record.write_text(json.dumps(run))
        result = blowtorch_command("runs", str(runs.save_path), "--json", "--name", "zeta", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)[0]["status"]

    assert status_with(now - dt.timedelta(minutes=5)) == "DEAD?"  # as Omniboard's PROBABLY_DEAD (over 120 s)
    assert status_with(now) == "RUNNING"


def test_damaged_and_half_written_runs_get_one_line_each_and_the_others_are_listed(cli_runs, blowtorch_command, tmp_path):
    runs = cli_runs.copy(tmp_path / "copy")
    (runs.save_path / "sacred" / "1" / "run.json").write_text('{"status": "COMPL')
    (runs.save_path / "sacred" / "2" / "metrics.json").write_text("[1, 2")
    (runs.save_path / "2026-01-01_00-00-00-ghost-99").mkdir()  # killed while it was being set up
    (runs.save_path / "notes").mkdir()  # not a run directory: ignored
    result = blowtorch_command("runs", str(runs.save_path), cwd=tmp_path)
    assert result.returncode == 0
    table = parse_table(result.stdout)
    rows = {r["RUN"]: r for r in table}
    assert len(table) == 10 and "notes" not in rows  # the 9 lines of the runs, and the half-made directory
    assert rows[runs.dirs["alpha"].name]["STATUS"] == "?" and rows[runs.dirs["beta"].name]["STATUS"] == "COMPLETED"
    assert rows["2026-01-01_00-00-00-ghost-99"]["STATUS"] == "?"
    warnings = result.stderr.splitlines()
    assert len(warnings) == 3 and all(w.startswith("blowtorch runs: warning: ") for w in warnings), result.stderr
    assert f"{runs.dirs['alpha'].name}: sacred/1/run.json cannot be read: Unterminated string" in warnings[1] + warnings[2]
    assert f"{runs.dirs['beta'].name}: sacred/2/metrics.json cannot be read: Expecting" in result.stderr
    assert "2026-01-01_00-00-00-ghost-99: status.json is missing: the run was killed while it started" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_arguments_and_a_missing_save_path(blowtorch_command, tmp_path):
    result = blowtorch_command("runs", "--status", "sleeping", cwd=tmp_path)
    assert result.returncode == 2 and "argument --status: unknown status 'sleeping'; use one of COMPLETED," in result.stderr
    result = blowtorch_command("runs", "--last", "0", cwd=tmp_path)
    assert result.returncode == 2 and "argument --last: expected a number of runs (1 or more), got '0'" in result.stderr
    result = blowtorch_command("runs", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == (
        f"blowtorch runs: {tmp_path / 'train_logs'} does not exist; pass the save_path the runs were written to "
        f"(default: train_logs)\n"
    )
    (tmp_path / "file").write_text("")
    result = blowtorch_command("runs", "file", cwd=tmp_path)
    assert result.returncode == 1 and "is a file, not a save_path directory of run directories" in result.stderr
    result = blowtorch_command("runs", "--help", cwd=tmp_path)
    assert result.returncode == 0 and "shows as DEAD?" in result.stdout


def test_every_subcommand_has_help(blowtorch_command, tmp_path):
    top = blowtorch_command("--help", cwd=tmp_path)
    assert top.returncode == 0 and all(name in top.stdout for name in ("runs", "show", "diff", "plot", "push"))
    for name, says in (("show", "the exact command that resumes it"), ("diff", "config keys that differ"),
                       ("plot", "pip install 'blowtorch[plot]'"), ("push", "--update")):  # fmt: skip
        result = blowtorch_command(name, "--help", cwd=tmp_path)
        assert result.returncode == 0 and says in " ".join(result.stdout.split()), result.stdout
    assert blowtorch_command(cwd=tmp_path).returncode == 2  # no subcommand: a usage error


def test_reading_finished_runs_does_not_import_torch(cli_runs, tmp_path):
    # `import torch` takes a second or two: the commands that only read files start without it. (Only a
    # killed run's best value comes from its checkpoint, which takes torch to read.)
    alpha = cli_runs.dirs["alpha"]
    save_path = tmp_path / "train_logs"
    shutil.copytree(alpha, save_path / alpha.name)
    sacred_id = str(read_json(alpha / "status.json")["sacred_run_id"])
    shutil.copytree(cli_runs.save_path / "sacred" / sacred_id, save_path / "sacred" / sacred_id)
    program = (
        "import sys\n"
        "from blowtorch.cli import main\n"
        f"codes = [main(['runs', {str(save_path)!r}]), main(['show', 'alpha', '--save-path', {str(save_path)!r}])]\n"
        "print('CODES', codes, 'TORCH', 'torch' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    result = subprocess.run([sys.executable, "-c", program], cwd=tmp_path, capture_output=True, text=True, timeout=180, env=env)
    assert result.returncode == 0, result.stderr
    assert "alpha" in result.stdout and "COMPLETED" in result.stdout
    assert result.stdout.splitlines()[-1] == "CODES [0, 0] TORCH False"
