"""``blowtorch diff RUN_A RUN_B``: real runs compared by name, prefix and sacred id."""

from __future__ import annotations

from tests.helpers import read_json


def values_at(metrics: dict, name: str, epoch: int) -> float:
    return dict(zip(metrics[name]["steps"], metrics[name]["values"], strict=True))[epoch]


def test_config_differences_then_final_and_best_metrics_side_by_side(cli_runs, blowtorch_command):
    result = blowtorch_command("diff", "alpha", cli_runs.dirs["beta"].name[:-2], cwd=cli_runs.base)  # a name and a prefix
    assert result.returncode == 0 and result.stderr == "", result.stderr
    header, config, metrics = result.stdout.rstrip("\n").split("\n\n")
    assert header.splitlines() == [f"A  {cli_runs.dirs['alpha']}", f"B  {cli_runs.dirs['beta']}"]
    assert config.splitlines() == ["config (A -> B)", "  lr: 0.05 -> 0.1", "  max_epochs: 3 -> 2"]
    lines = [line.split() for line in metrics.splitlines()]
    assert " ".join(lines[1]) == "A FINAL (EPOCH 2) B FINAL (EPOCH 1) A BEST (EPOCH 2) B BEST (EPOCH 1)"
    sacred = cli_runs.save_path / "sacred"
    a, b = read_json(sacred / "1" / "metrics.json"), read_json(sacred / "2" / "metrics.json")
    rows = {row[0]: row[1:] for row in lines[2:]}
    assert set(rows) == {"lr.main", "train.loss", "train.mae", "val.loss", "val.mae"}
    for name, row in rows.items():
        final = [f"{values_at(a, name, 2):.6g}", f"{values_at(b, name, 1):.6g}"]
        assert row == final * 2  # both runs were best at their last epoch


def test_a_chain_against_a_run_by_sacred_ids(cli_runs, blowtorch_command):
    result = blowtorch_command("diff", "4", "1", "--save_path", str(cli_runs.save_path), cwd=cli_runs.base)
    assert result.returncode == 0, result.stderr
    config = result.stdout.split("\n\n")[1].splitlines()
    # run 4 names its run directory: the whole chain, with the config of its newest run (resumed with term_at=-1)
    assert config == ["config (A -> B)", "  max_epochs: 4 -> 3"]
    assert "A FINAL (EPOCH 3)" in result.stdout  # epoch 0 by run 4, epochs 1-3 by its continuation

    same = blowtorch_command("diff", "beta", "beta", cwd=cli_runs.base)
    assert same.returncode == 0 and same.stdout.split("\n\n")[1] == "config: the same"


def test_an_unknown_run_or_a_missing_argument(cli_runs, blowtorch_command):
    result = blowtorch_command("diff", "alpha", "omega", cwd=cli_runs.base)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith(f"blowtorch diff: no run 'omega' in {cli_runs.save_path}; its runs (newest first): ")
    result = blowtorch_command("diff", "alpha", cwd=cli_runs.base)
    assert result.returncode == 2 and "the following arguments are required: RUN_B" in result.stderr
