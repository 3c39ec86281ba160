"""The README's section on the blowtorch command: its table is what the command prints for those runs, and
its commands run as written."""

from __future__ import annotations

import re
import shlex
import signal

from tests.helpers import REPO, run_python, write_script
from tests.integration.cli_runs import MAKE_RUNS
from tests.integration.test_cli_runs import parse_table

SECTION = (REPO / "README.md").read_text().split("## The blowtorch command\n", 1)[1].split("\n## ", 1)[0]
COMPARED = ("ID", "STATUS", "EPOCHS", "BEST", "RESUMED FROM")


def test_the_readme_table_and_commands(tmp_path, mongo_server, mongo_db_name, blowtorch_command):
    script = write_script(tmp_path, MAKE_RUNS)
    runs = ("-n lr=0.05", "-n lr=0.1 with lr=0.1", "-n long with term_at=6", "--resume PREVIOUS with term_at=-1 max_epochs=5",
            "-n crash with kill_at=9")  # fmt: skip
    assert run_python(script, *runs, cwd=tmp_path).returncode == -signal.SIGKILL

    [table] = re.findall(r"```text\n\$ blowtorch runs[^\n]*\n(.*?)```", SECTION, flags=re.DOTALL)
    result = blowtorch_command("runs", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    shown, documented = parse_table(result.stdout), parse_table(table)
    assert len(shown) == len(documented) + 1  # the README leaves out the oldest run

    def comparable(row):
        run = row["RUN"][20:] if row["RUN"][:4].isdigit() else row["RUN"]  # no timestamp: another day
        return [run, *(row[c] for c in COMPARED)]

    assert [comparable(r) for r in shown[:-1]] == [comparable(r) for r in documented]

    [commands] = re.findall(r"```shell\n(blowtorch show.*?)```", SECTION, flags=re.DOTALL)
    for line in commands.splitlines():
        arguments = shlex.split(line.split("#")[0])[1:]
        if arguments[0] == "push":  # the README's local MongoDB: the tests' server
            arguments[arguments.index("localhost:27017:sacred")] = mongo_server.sacred_m_arg(mongo_db_name)
        result = blowtorch_command(*arguments, cwd=tmp_path)
        assert result.returncode == 0, f"{line}\n{result.stderr}"
    assert (tmp_path / "val-loss.svg").is_file()
    with mongo_server.client() as client:
        assert [r["status"] for r in client[mongo_db_name].runs.find().sort("_id", 1)] == ["INTERRUPTED", "COMPLETED", "RUNNING"]
