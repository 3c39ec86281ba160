"""The ``blowtorch`` command: look at runs on disk without a dashboard, and push offline runs to MongoDB.

Each subcommand is a module here with ``register(subcommands)``, which adds its parser and sets
``handler``: a function of the parsed arguments that returns the exit code. Exit codes scripts can
rely on: 0 success, 1 a run or file not found (or another failure of the command), 2 a usage error
(argparse's own code).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import import_module

OK = 0
NOT_FOUND = 1
USAGE = 2


class CommandError(Exception):
    """What went wrong, in one line for the user, and the exit code; the command prints it, never a traceback."""

    def __init__(self, message: str, code: int = NOT_FOUND) -> None:
        super().__init__(message)
        self.code = code


#: The subcommand modules, in the order ``blowtorch --help`` lists them.
SUBCOMMANDS: tuple[str, ...] = ("runs", "show", "diff", "plot", "push")


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
    try:
        return int(args.handler(args))
    except CommandError as error:
        print(f"blowtorch {args.command}: {error}", file=sys.stderr)
        return error.code
