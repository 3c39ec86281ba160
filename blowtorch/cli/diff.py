"""``blowtorch diff RUN_A RUN_B``: the config keys that differ, then final and best metrics side by side."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from blowtorch.cli import OK
from blowtorch.cli.details import EpochMetrics, run_config
from blowtorch.cli.records import RunHistory
from blowtorch.cli.resolve import add_save_path_option, resolve
from blowtorch.cli.show import RUN_HELP
from blowtorch.cli.text import number, table
from blowtorch.config import config_differences


def register(subcommands: Any) -> None:
    parser = subcommands.add_parser(
        "diff",
        help="compare two runs: config differences, final and best metrics",
        description=(
            "The config keys that differ between two runs (nested keys dotted: 'model.layers: 2 -> 3'), then the "
            "metrics of each run's final epoch and best epoch (by its checkpoint metric) side by side."
        ),
    )
    parser.add_argument("run_a", metavar="RUN_A", help=RUN_HELP)
    parser.add_argument("run_b", metavar="RUN_B", help="the run to compare it with, named the same ways")
    add_save_path_option(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    cache: dict[Path, Any] = {}
    a = resolve(args.run_a, Path(args.save_path), cache).history
    b = resolve(args.run_b, Path(args.save_path), cache).history
    print(render(a, b))
    for label, history in (("A", a), ("B", b)):
        for problem in history.all_problems():
            print(f"blowtorch diff: warning: {label} {history.name}: {problem}", file=sys.stderr)
    return OK


def render(a: RunHistory, b: RunHistory) -> str:
    header = table(None, [["A", str(a.path)], ["B", str(b.path)]])
    return "\n\n".join([header, _config(a, b), _metrics(a, b)])


def _config(a: RunHistory, b: RunHistory) -> str:
    (config_a, source_a), (config_b, source_b) = run_config(a), run_config(b)
    if config_a is None or config_b is None:
        sides = (("A", config_a, source_a), ("B", config_b, source_b))
        return "config: cannot be compared (" + "; ".join(f"{label}: {source}" for label, config, source in sides if config is None) + ")"
    differences = config_differences(config_a, config_b)
    if not differences:
        return "config: the same"
    return "config (A -> B)\n" + "\n".join(f"  {line}" for line in differences)


def _metrics(a: RunHistory, b: RunHistory) -> str:
    ma, mb = EpochMetrics.of(a), EpochMetrics.of(b)
    names = sorted(set(ma.last) | set(mb.last))
    if not names:
        return "metrics: none in either run"
    headers = ["", *(_heading(f"{label} FINAL", m.last_epoch) for label, m in (("A", ma), ("B", mb)))]
    headers += [_heading(f"{label} BEST", m.best_epoch) for label, m in (("A", ma), ("B", mb))]
    rows = [[name, *(number(values.get(name)) for values in (ma.last, mb.last, ma.best, mb.best))] for name in names]
    return "metrics\n" + table(headers, rows, indent="  ")


def _heading(title: str, epoch: int | None) -> str:
    return f"{title} (EPOCH {epoch})" if epoch is not None else title
