"""The options of run(...) are declared once (RunOptions); the signature and the README must agree with it."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re

import pytest

from blowtorch import OptionError, Run
from blowtorch.options import RunOptions
from tests.helpers import REPO

POSITIONAL = ["model", "train_loader", "val_loader"]


def readme_options() -> list[tuple[str, object]]:
    """(name, default) of every row of the README's run options table, in order; required ones have no default."""
    section = REPO.joinpath("README.md").read_text().split("\n## Run options\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \|\s*([^|]*?)\s*\|", section, flags=re.MULTILINE)
    assert rows, "the README's run options table was not found"
    return [(name, ast.literal_eval(default.strip("`")) if default else inspect.Parameter.empty) for name, default in rows]


def test_the_signature_of_run_declares_exactly_the_options_with_their_defaults():
    parameters = list(inspect.signature(Run.__call__).parameters.values())[1:]  # without self
    declared = [(f.name, f.default) for f in dataclasses.fields(RunOptions)]
    assert [p.name for p in parameters] == POSITIONAL + [name for name, _ in declared]
    assert [(p.name, p.default) for p in parameters[len(POSITIONAL) :]] == declared
    annotations = {f.name: f.type for f in dataclasses.fields(RunOptions)}
    assert {p.name: p.annotation for p in parameters[len(POSITIONAL) :]} == annotations  # the same types, as written


def test_the_readme_table_lists_every_option_with_its_default():
    expected = [(p.name, p.default) for p in list(inspect.signature(Run.__call__).parameters.values())[1:]]
    assert readme_options() == expected


def test_options_are_taken_from_the_arguments_of_run():
    options = RunOptions.from_arguments({"self": object(), "model": object(), "max_epochs": 7, "run_name": "x"})
    assert options.max_epochs == 7 and options.run_name == "x" and options.keep_last_epochs == 0


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("max_epochs", 0, "max_epochs must be an int >= 1"),
        ("max_epochs", 2.0, "max_epochs must be an int >= 1"),
        ("keep_last_epochs", -1, "keep_last_epochs must be an int >= 0"),
        ("checkpoint_every_n_steps", 0, "checkpoint_every_n_steps must be an int >= 1"),
        ("log_every_n_steps", True, "log_every_n_steps must be an int >= 1"),
        ("upload_checkpoints", "all", "upload_checkpoints takes 'best', 'latest' or both"),
    ],
)
def test_bad_options_are_named_with_what_is_expected(option, value, message):
    with pytest.raises(OptionError, match=re.escape(message)):
        RunOptions(**{option: value}).check(resuming=False)


@pytest.mark.parametrize("name", ["use_gpu", "smaller_is_better", "optimize_first", "detect_anomalies", "progress"])
def test_switches_must_be_booleans_not_strings_that_would_be_true(name):
    with pytest.raises(OptionError, match=rf"{name} must be True or False, got 'False'"):
        RunOptions(**{name: "False"}).check(resuming=False)
