"""``blowtorch plot RUN... [-m METRIC ...] [-o FILE]``: learning curves, one panel per metric, one line per run.

matplotlib is an optional extra (``pip install "blowtorch[plot]"``), imported only here. The figure
is a plain ``matplotlib.figure.Figure`` (no pyplot, no global state), built by :func:`build_figure`.
"""

from __future__ import annotations

import argparse
import fnmatch
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blowtorch.cli import NOT_FOUND, OK, USAGE, CommandError
from blowtorch.cli.records import RunHistory
from blowtorch.cli.resolve import add_save_path_option, resolve
from blowtorch.loggers.base import is_step_phase

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DEFAULT_METRICS = ("train.*", "val.*")
FORMATS = (".png", ".svg", ".pdf")
#: One line of a panel: the run's label, and its x and y values.
Curve = tuple[str, list[int], list[float]]


def register(subcommands: Any) -> None:
    parser = subcommands.add_parser(
        "plot",
        help="plot learning curves of runs into a PNG, SVG or PDF file",
        description=(
            "One panel per metric, one line per run, epochs on the x axis (the global step for per-step metrics "
            "such as train_step.loss, logged with log_every_n_steps). A resumed run is one line: its first run and "
            "each continuation. Needs matplotlib: pip install 'blowtorch[plot]'."
        ),
    )
    parser.add_argument("runs", nargs="+", metavar="RUN", help="runs, each named as for 'blowtorch show'")
    parser.add_argument(
        "-m", "--metric", dest="metrics", action="extend", nargs="+", metavar="METRIC",
        help="metric names or patterns, e.g. val.loss 'train_step.*' (default: every train.* and val.* metric)",
    )  # fmt: skip
    parser.add_argument("-o", "--output", default="curves.png", metavar="FILE", help="default: curves.png; .png, .svg or .pdf")
    add_save_path_option(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    output = Path(args.output)
    if output.suffix.lower() not in FORMATS:
        raise CommandError(f"-o {args.output}: cannot tell the format; give a file name ending in {', '.join(FORMATS)}", USAGE)
    _require_matplotlib()
    histories, failed = [], False
    cache: dict[Path, Any] = {}
    for spec in args.runs:
        try:
            histories.append(resolve(spec, Path(args.save_path), cache).history)
        except CommandError as error:  # one line; the other runs are still plotted
            print(f"blowtorch plot: {error}", file=sys.stderr)
            failed = True
    histories = list({history.path: history for history in histories}.values())  # a run named twice is one line
    patterns = args.metrics or DEFAULT_METRICS
    panels = select_panels(histories, patterns)
    for pattern in patterns:
        if panels and not any(fnmatch.fnmatchcase(name, pattern) for name in panels):
            print(f"blowtorch plot: {_what_there_is(histories, [pattern])}", file=sys.stderr)
            failed = True
    for history in histories:
        if not any(label == _label(history) for curves in panels.values() for label, _, _ in curves):
            print(f"blowtorch plot: {history.name} has none of these metrics (it has: {_names(history)}); not plotted", file=sys.stderr)
            failed = True
    if not panels:
        raise CommandError("nothing to plot: " + _what_there_is(histories, patterns))
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        build_figure(panels).savefig(output)
    except OSError as error:
        raise CommandError(f"cannot write {output}: {error.strerror or error}") from None
    plotted = {label for curves in panels.values() for label, _, _ in curves}
    print(f"{output}: {len(panels)} metrics of {len(plotted)} runs")
    return NOT_FOUND if failed else OK


def select_panels(histories: Sequence[RunHistory], patterns: Sequence[str]) -> dict[str, list[Curve]]:
    """The curves of every metric that matches a pattern, by metric, in the patterns' order; a chain is one curve."""
    metrics = [(history, history.metrics()) for history in histories]
    names: list[str] = []
    for pattern in patterns:
        names += [n for n in sorted({n for _, m in metrics for n in m if fnmatch.fnmatchcase(n, pattern)}) if n not in names]
    panels: dict[str, list[Curve]] = {}
    for name in names:
        for history, values in metrics:
            if values.get(name):
                points = sorted(values[name].items())
                panels.setdefault(name, []).append((_label(history), [x for x, _ in points], [y for _, y in points]))
    return panels


def build_figure(panels: Mapping[str, Sequence[Curve]]) -> Figure:
    """One panel (``Axes``, titled by the metric) per metric, one line (labelled by the run) per curve."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure = Figure(figsize=(5.0 * columns, 3.4 * rows), layout="constrained")
    for index, (name, curves) in enumerate(panels.items()):
        axes = figure.add_subplot(rows, columns, index + 1)
        for label, xs, ys in curves:
            axes.plot(xs, ys, marker="o" if len(xs) <= 30 else None, markersize=3, label=label)
        axes.set_title(name)
        axes.set_xlabel("global step" if is_step_phase(name.partition(".")[0]) else "epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs and steps are whole numbers
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small")
    return figure


def _label(history: RunHistory) -> str:
    """``alpha-1``: the run directory's name without its timestamp."""
    return history.name[20:]


def _names(history: RunHistory) -> str:
    return ", ".join(sorted(history.metrics())) or "no metrics yet"


def _what_there_is(histories: Sequence[RunHistory], patterns: Sequence[str]) -> str:
    there = sorted({name for history in histories for name in history.metrics()})
    if not histories:
        return "no run was found"
    asked = " or ".join(repr(p) for p in patterns)
    return f"no run has a metric matching {asked}; they have: {', '.join(there) if there else 'no metrics yet'}"


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError as error:
        raise CommandError(
            f"plotting needs matplotlib, which is not installed ({error}); install the optional extra with "
            f"pip install 'blowtorch[plot]'"
        ) from None
