"""``blowtorch plot``: the plotted values of real runs (a resumed chain as one line), the files, the missing extra."""

from __future__ import annotations

import matplotlib.image

from blowtorch.cli.plot import DEFAULT_METRICS, build_figure, select_panels
from blowtorch.cli.records import read_save_path
from tests.helpers import read_json


def lines_of(figure) -> dict[str, dict[str, tuple[list, list]]]:
    """Each panel's lines: metric (the panel's title) -> run label -> (x data, y data)."""
    return {
        axes.get_title(): {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in axes.get_lines()}
        for axes in figure.axes
    }


def series(save_path, sacred_ids, name) -> tuple[list, list]:
    """A metric of sacred runs as the file storage has it, later runs replacing the same x."""
    values = {}
    for sacred_id in sacred_ids:
        metric = read_json(save_path / "sacred" / str(sacred_id) / "metrics.json")[name]
        values.update(zip(metric["steps"], metric["values"], strict=True))
    return sorted(values), [values[x] for x in sorted(values)]


def test_each_line_holds_its_runs_values_and_a_resumed_chain_is_one_line(cli_runs, blowtorch_command, tmp_path):
    histories = {h.run_name: h for h in read_save_path(cli_runs.save_path).histories}
    figure = build_figure(select_panels([histories["alpha"], histories["beta"], histories["delta"]], DEFAULT_METRICS))
    panels = lines_of(figure)
    assert list(panels) == ["train.loss", "train.mae", "val.loss", "val.mae"]  # every train.* and val.* metric
    labels = {name: f"{name}-{path.name.rsplit('-', 1)[1]}" for name, path in cli_runs.dirs.items()}
    for metric, lines in panels.items():
        assert list(lines) == [labels["alpha"], labels["beta"], labels["delta"]]
        assert lines[labels["alpha"]] == series(cli_runs.save_path, [1], metric)
        assert lines[labels["beta"]] == series(cli_runs.save_path, [2], metric)
        assert lines[labels["delta"]] == series(cli_runs.save_path, [4, 5, 6], metric)  # sacred runs 4, 5 and 6: one line
        assert lines[labels["delta"]][0] == [0, 1, 2, 3]
    assert {axes.get_xlabel() for axes in figure.axes} == {"epoch"}

    steps = build_figure(select_panels([histories["delta"]], ["train_step.loss"]))
    [axes] = steps.axes
    assert axes.get_xlabel() == "global step"
    assert lines_of(steps)["train_step.loss"][labels["delta"]] == series(cli_runs.save_path, [4, 5, 6], "train_step.loss")

    # The command draws exactly this figure: its PNG is byte for byte the one saved here.
    result = blowtorch_command("plot", "alpha", "beta", "4", cwd=cli_runs.base, env={"MPLCONFIGDIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout == "curves.png: 4 metrics of 3 runs\n"
    written = cli_runs.base / "curves.png"
    figure.savefig(tmp_path / "expected.png")
    assert written.read_bytes() == (tmp_path / "expected.png").read_bytes()
    height, width, _ = matplotlib.image.imread(written).shape  # a PNG that opens
    assert (width, height) == (1500, 680)


def test_svg_and_pdf_by_suffix_and_runs_without_the_metrics(cli_runs, blowtorch_command, tmp_path):
    arguments = ["zeta", "eta", "nothing", "-m", "val.loss", "val.accuracy", "-o", "out/curves.svg"]
    result = blowtorch_command("plot", *arguments, cwd=cli_runs.base)
    assert result.returncode == 1  # something asked for was not plotted; the rest was
    assert result.stdout == "out/curves.svg: 1 metrics of 1 runs\n"
    errors = result.stderr.splitlines()
    assert errors[0].startswith(f"blowtorch plot: no run 'nothing' in {cli_runs.save_path}; its runs (newest first): ")
    assert errors[1] == "blowtorch plot: no run has a metric matching 'val.accuracy'; they have: " + ", ".join(
        ["lr.main", "lr_step.main", "train.loss", "train.mae", "train_step.loss", "train_step.mae", "val.loss", "val.mae"]
    )
    assert errors[2] == (  # killed at step 1: log.txt has step 0
        f"blowtorch plot: {cli_runs.dirs['eta'].name} has none of these metrics (it has: lr_step.main, train_step.loss, "
        f"train_step.mae); not plotted"
    )
    assert len(errors) == 3
    assert (cli_runs.base / "out" / "curves.svg").read_text().startswith("<?xml")
    pdf = blowtorch_command("plot", "beta", "-o", str(tmp_path / "curves.pdf"), cwd=cli_runs.base)
    assert pdf.returncode == 0 and (tmp_path / "curves.pdf").read_bytes().startswith(b"%PDF")


def test_bad_output_names_and_matplotlib_missing(cli_runs, blowtorch_command, tmp_path):
    result = blowtorch_command("plot", "beta", "-o", "curves.jpg", cwd=cli_runs.base)
    assert result.returncode == 2
    assert result.stderr == "blowtorch plot: -o curves.jpg: cannot tell the format; give a file name ending in .png, .svg, .pdf\n"
    result = blowtorch_command("plot", "eta", cwd=cli_runs.base)
    assert result.returncode == 1 and "nothing to plot: no run has a metric matching 'train.*' or 'val.*'" in result.stderr

    hidden = tmp_path / "hide_matplotlib"
    hidden.mkdir()
    (hidden / "sitecustomize.py").write_text("import sys\nsys.modules['matplotlib'] = None  # as if it were not installed\n")
    result = blowtorch_command("plot", "beta", "-o", str(tmp_path / "c.png"), cwd=cli_runs.base, env={"PYTHONPATH": f"{hidden}"})
    assert result.returncode == 1
    assert result.stderr.startswith("blowtorch plot: plotting needs matplotlib, which is not installed (")
    assert result.stderr.endswith("install the optional extra with pip install 'blowtorch[plot]'\n")
    assert not (tmp_path / "c.png").exists()
