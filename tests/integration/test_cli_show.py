"""``blowtorch show RUN``: real runs named by path, name, prefix and sacred id; damaged and unknown ones."""

from __future__ import annotations

import shlex

import yaml

from blowtorch.cli.details import dotted
from tests.helpers import read_json


def section(output: str, title: str) -> list[str]:
    """The lines of the section of ``show``'s output that starts with ``title``."""
    block = next(b for b in output.split("\n\n") if b.startswith(title))
    return block.splitlines()


def metric_line(save_path, name: str, last: int, best: int) -> str:
    """A line of the metrics table of the chain of sacred runs 4-6, from their file storage."""
    values = {}
    for sacred_id in (4, 5, 6):
        metric = read_json(save_path / "sacred" / str(sacred_id) / "metrics.json")[name]
        values.update(zip(metric["steps"], metric["values"], strict=True))
    return f"{name} {values[last]:.6g} {values[best]:.6g}"


def test_a_resumed_run_by_sacred_id_shows_config_metrics_checkpoints_chain_and_resume_command(cli_runs, blowtorch_command):
    result = blowtorch_command("show", "5", cwd=cli_runs.base)  # the continuation's id: its run directory
    assert result.returncode == 0 and result.stderr == "", result.stderr
    run_dir, out = cli_runs.dirs["delta"], result.stdout
    summary = dict(line.split(None, 1) for line in out.split("\n\n")[0].splitlines())
    assert summary["run"] == run_dir.name and summary["path"] == str(run_dir) and summary["experiment"] == "train"
    assert summary["status"] == "COMPLETED, epochs 4/4"
    assert shlex.split(summary["resume"]) == ["python", str(cli_runs.base / "train.py"), "--resume", str(run_dir)]
    chain = [line.split()[:3] for line in section(out, "sacred runs")[2:]]
    assert chain == [["4", "INTERRUPTED", "1/3"], ["5", "INTERRUPTED", "3/4"], ["6", "COMPLETED", "4/4"]]
    assert section(out, "sacred runs")[3].endswith("run 4 at epoch 1")
    assert section(out, "sacred runs")[4].endswith("run 5 at epoch 3")

    config = section(out, "config (config.yaml)")[1:]
    expected = dotted(yaml.safe_load((run_dir / "config.yaml").read_text()))
    assert config == [f"  {key}: {value!r}" for key, value in sorted(expected.items())]
    assert "  max_epochs: 4" in config and "  term_at: -1" in config

    best_epoch = read_json(cli_runs.save_path / "sacred" / "6" / "run.json")["result"]["best_epoch"]
    table = section(out, "metrics")
    assert table[1].split() == ["LAST", "(EPOCH", "3)", "BEST", "(EPOCH", f"{best_epoch})"]
    lines = {" ".join(line.split()) for line in table[2:-1]}
    assert len(lines) == 5
    for name in ("train.loss", "val.loss", "val.mae", "lr.main"):
        assert metric_line(cli_runs.save_path, name, 3, best_epoch) in lines
    assert "per step: lr_step.main (8 steps), train_step.loss (8 steps)," in out  # log_every_n_steps=2: 16 steps

    manifest = read_json(run_dir / "checkpoints" / "manifest.json")["files"]
    files = {line.split()[0]: line.split() for line in section(out, "checkpoints")[2:]}
    assert set(files) == set(manifest) == {"best.pt", "latest.pt"}
    for name, entry in manifest.items():
        size = entry["accepted"][0][1]
        assert files[name][1:] == [f"{size / 1024:.1f}", "KiB", str(entry["epoch"]), str(entry["global_step"]), "ok"]


def test_names_prefixes_and_paths_name_the_same_run(cli_runs, blowtorch_command, tmp_path):
    alpha = cli_runs.dirs["alpha"]
    outputs = [
        blowtorch_command("show", *args, cwd=cwd)
        for args, cwd in (
            (["alpha"], cli_runs.base),  # the run name
            ([alpha.name[:-3], "--save_path", str(cli_runs.save_path)], tmp_path),  # a unique prefix, elsewhere
            ([str(alpha)], tmp_path),  # the path
        )
    ]
    assert [o.returncode for o in outputs] == [0, 0, 0], [o.stderr for o in outputs]
    assert outputs[0].stdout == outputs[1].stdout == outputs[2].stdout
    assert outputs[0].stdout.startswith(f"run         {alpha.name}\n")


def test_a_killed_run_a_half_written_one_and_an_unrecorded_one(cli_runs, blowtorch_command):
    killed = blowtorch_command("show", "zeta", cwd=cli_runs.base)
    assert killed.returncode == 0, killed.stderr
    assert "status      DEAD?, epochs 2/3" in killed.stdout
    # sacred had not stored its metrics yet (they go with its heartbeat): log.txt has them
    assert section(killed.stdout, "metrics")[1].split()[:3] == ["LAST", "(EPOCH", "1)"]
    assert [line.split()[0] for line in section(killed.stdout, "checkpoints")[2:]] == ["best.pt", "latest.pt"]

    half = blowtorch_command("show", "eta", cwd=cli_runs.base)
    assert half.returncode == 0, half.stderr
    assert "metrics: none yet (the run ended or was killed before its first epoch)" in half.stdout
    assert "checkpoints: none (the run ended or was killed before its first checkpoint)" in half.stdout

    unrecorded = blowtorch_command("show", "epsilon", cwd=cli_runs.base)
    assert unrecorded.returncode == 0, unrecorded.stderr
    assert "sacred runs: none (the run was started with -u" in unrecorded.stdout
    assert section(unrecorded.stdout, "metrics")[1].split()[:3] == ["LAST", "(EPOCH", "2)"]  # from log.txt


def test_a_corrupt_checkpoint_and_a_corrupt_metrics_file_are_flagged(cli_runs, blowtorch_command, tmp_path):
    runs = cli_runs.copy(tmp_path / "copy")
    latest = runs.dirs["alpha"] / "checkpoints" / "latest.pt"
    latest.write_bytes(latest.read_bytes()[:1000])
    (runs.save_path / "sacred" / "1" / "metrics.json").write_text("{")
    result = blowtorch_command("show", "alpha", "-s", str(runs.save_path), cwd=tmp_path)
    assert result.returncode == 0
    files = {line.split()[0]: line for line in section(result.stdout, "checkpoints")}
    assert files["latest.pt"].endswith("CORRUPT") and files["best.pt"].endswith("ok")
    assert f"  latest.pt: checkpoint {latest} is corrupt or truncated: it has 1000 bytes" in result.stdout
    assert result.stderr.startswith("blowtorch show: warning: sacred/1/metrics.json cannot be read: Expecting")
    assert section(result.stdout, "metrics")[1].split()[:3] == ["LAST", "(EPOCH", "2)"]  # from log.txt instead
    assert "Traceback" not in result.stderr


def test_unknown_ambiguous_and_wrong_runs_list_candidates_or_say_what_is_expected(cli_runs, blowtorch_command, tmp_path):
    def show(*args):
        result = blowtorch_command("show", *args, cwd=cli_runs.base)
        assert result.returncode == 1 and result.stdout == "" and len(result.stderr.splitlines()) == 1, result.stderr
        return result.stderr

    names = [cli_runs.dirs[n].name for n in ("zeta", "eta", "epsilon", "delta", "gamma", "beta", "alpha")]
    assert show("nothing") == (
        f"blowtorch show: no run 'nothing' in {cli_runs.save_path}; its runs (newest first): {', '.join(names)}\n"
    )
    assert show("2026") == (
        f"blowtorch show: run '2026' is ambiguous in {cli_runs.save_path}: it matches {', '.join(names)}; give more "
        f"of the name, the whole directory name, or a sacred id\n"
    )
    assert show("train_logs").startswith("blowtorch show: train_logs is a save_path, not a run directory;")
    (tmp_path / "notes").mkdir()
    assert show(str(tmp_path / "notes")).startswith(f"blowtorch show: {tmp_path / 'notes'} is not a run directory: blowtorch names")
    assert show("train_logs/2026-gone-1") == (
        "blowtorch show: train_logs/2026-gone-1 does not exist; pass a run directory, or a run's name with --save_path\n"
    )
    assert show("alpha", "--save_path", str(tmp_path / "missing")) == (
        f"blowtorch show: {tmp_path / 'missing'} does not exist; pass the save_path the runs were written to (default: train_logs)\n"
    )
    result = blowtorch_command("show", cwd=tmp_path)
    assert result.returncode == 2 and "the following arguments are required: RUN" in result.stderr
