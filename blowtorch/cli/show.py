"""``blowtorch show RUN``: one run in full: config, metrics, checkpoints, its chain, how to resume it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from blowtorch.cli import OK
from blowtorch.cli.details import EpochMetrics, checkpoints, dotted, resume_command, run_config
from blowtorch.cli.records import RunHistory
from blowtorch.cli.resolve import add_save_path_option, resolve
from blowtorch.cli.text import duration, local_time, number, table

RUN_HELP = "a run directory, its name, a unique prefix of its name (or of its run name), or a sacred id"


def register(subcommands: Any) -> None:
    parser = subcommands.add_parser(
        "show",
        help="show one run: config, metrics, checkpoints, its chain, how to resume it",
        description=(
            "Show a run: its resolved config, the metrics of its last and best epoch, its checkpoints (from "
            "checkpoints/manifest.json, each verified; a corrupt one is flagged), the sacred runs of its chain "
            "and the exact command that resumes it."
        ),
    )
    parser.add_argument("run", metavar="RUN", help=RUN_HELP)
    add_save_path_option(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    history = resolve(args.run, Path(args.save_path)).history
    print(render(history))
    for problem in history.all_problems():
        print(f"blowtorch show: warning: {problem}", file=sys.stderr)
    return OK


def render(history: RunHistory) -> str:
    newest = history.newest
    best = newest.best
    summary = [
        ["run", history.name],
        ["path", str(history.path)],
        ["experiment", history.experiment or "-"],
        ["status", f"{newest.status}, epochs {newest.epochs_done}/{newest.max_epochs if newest.max_epochs is not None else '?'}"],
        ["best", f"{best.metric} {number(best.value)} at epoch {best.epoch}" if best is not None else "-"],
        ["resume", resume_command(history)],
    ]
    sections = [table(None, summary), _chain(history), _config(history), _metrics(history), _checkpoints(history)]
    return "\n\n".join(sections)


def _chain(history: RunHistory) -> str:
    if all(leg.stored is None for leg in history.legs):
        return "sacred runs: none (the run was started with -u, or killed before sacred recorded it)"
    rows = [
        [leg.id or "-", leg.status, f"{leg.epochs_done}/{leg.max_epochs or '?'}", local_time(leg.started), duration(leg.duration),
         leg.host or "-", leg.resumed_at or "-"]
        for leg in history.legs
    ]  # fmt: skip
    headers = ["ID", "STATUS", "EPOCHS", "STARTED", "DURATION", "HOST", "RESUMED FROM"]
    return "sacred runs (file storage: sacred/<ID>)\n" + table(headers, rows, indent="  ")


def _config(history: RunHistory) -> str:
    config, source = run_config(history)
    if config is None:
        return f"config: none ({source})"
    lines = [f"  {key}: {value!r}" for key, value in sorted(dotted(config).items())]
    return f"config ({source})\n" + "\n".join(lines)


def _metrics(history: RunHistory) -> str:
    metrics = EpochMetrics.of(history)
    if metrics.last_epoch is None:
        text = "metrics: none yet (the run ended or was killed before its first epoch)"
    else:
        names = sorted(metrics.last)
        best_header = f"BEST (EPOCH {metrics.best_epoch})" if metrics.best_epoch is not None else "BEST"
        rows = [[name, number(metrics.last.get(name)), number(metrics.best.get(name))] for name in names]
        text = "metrics\n" + table(["", f"LAST (EPOCH {metrics.last_epoch})", best_header], rows, indent="  ")
    if metrics.step_metrics:
        counts = ", ".join(f"{name} ({count} steps)" for name, count in sorted(metrics.step_metrics.items()))
        text += f"\n  per step: {counts}; plot them with blowtorch plot RUN -m NAME"
    return text


def _checkpoints(history: RunHistory) -> str:
    files, problem = checkpoints(history.path)
    if not files:
        return "checkpoints: none (the run ended or was killed before its first checkpoint)"
    rows = [[f.name, f.size, f.epoch, f.step, f.state] for f in files]
    text = "checkpoints (checkpoints/manifest.json)\n" + table(["FILE", "SIZE", "EPOCH", "STEP", "STATE"], rows, indent="  ")
    details = [f"  {f.name}: {f.detail}" for f in files if f.detail] + ([f"  {problem}"] if problem else [])
    return text + ("\n" + "\n".join(details) if details else "")
