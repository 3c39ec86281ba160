"""The ``blowtorch`` command: look at runs on disk without a dashboard, and push offline runs to MongoDB.

Each subcommand is a module here with ``register(subcommands)``, which adds its parser and sets
``handler``: a function of the parsed arguments that returns the exit code. Exit codes scripts can
rely on: 0 success, 1 a run or file not found (or another failure of the command), 2 a usage error
(argparse's own code).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from importlib import import_module

OK = 0
NOT_FOUND = 1
USAGE = 2

#: The subcommand modules, in the order ``blowtorch --help`` lists them.
SUBCOMMANDS: tuple[str, ...] = ()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="blowtorch",
        description="List, inspect, compare and plot blowtorch runs from their run directories, and push offline runs to MongoDB.",
    )
    subcommands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS:
        import_module(f"blowtorch.cli.{name}").register(subcommands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args))
