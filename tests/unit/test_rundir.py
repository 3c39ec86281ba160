import datetime as dt
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from blowtorch import OptionError
from blowtorch.options import RunOptions
from blowtorch.run_names import ADJECTIVES, ANIMALS, random_run_name
from blowtorch.rundir import RunDirectory, check_run_name, claim_number, plain_config, safe_run_name
from blowtorch.sacred_bridge.observers import DefaultFileStorageObserver
from blowtorch.sacred_bridge.record import RunRecord
from blowtorch.setup import run_directory

NOW = dt.datetime(2026, 11, 25, 9, 5, 3)


def number(path) -> int:
    return int(path.name.rsplit("-", 1)[1])


def stored_number(save_path, sacred_id=None) -> int:
    """What the default file storage does when a run starts: the number of the directory it makes."""
    storage = DefaultFileStorageObserver(save_path)
    storage._make_run_dir(sacred_id)
    assert storage.number is not None
    return storage.number


def test_name_is_timestamp_name_and_storage_number(tmp_path):
    run_dir = RunDirectory.create(tmp_path, "baseline", 7, now=NOW)
    assert run_dir.path.name == "2026-11-25_09-05-03-baseline-7"


def test_without_a_storage_number_the_next_free_number_is_used(tmp_path):
    first = RunDirectory.create(tmp_path, "a", None, now=NOW)
    second = RunDirectory.create(tmp_path, "b", None, now=NOW)
    (tmp_path / "sacred").mkdir()
    third = RunDirectory.create(tmp_path, "a", 12, now=NOW)
    fourth = RunDirectory.create(tmp_path, "a", None, now=NOW)
    assert [p.path.name.rsplit("-", 1)[1] for p in (first, second, third, fourth)] == ["1", "2", "12", "13"]


def test_unrecorded_runs_and_the_sacred_storage_share_one_sequence_of_numbers(tmp_path):
    assert stored_number(tmp_path) == 1  # a recorded run, then its directory
    assert number(RunDirectory.create(tmp_path, "recorded", 1, now=NOW).path) == 1
    assert number(RunDirectory.create(tmp_path, "unrecorded", None, now=NOW).path) == 2  # -u: not sacred/1
    assert stored_number(tmp_path) == 3  # the next recorded run does not take the -u run's 2
    assert stored_number(tmp_path, sacred_id="2") == 4  # nor does an id from another observer (-F, MongoDB)
    assert stored_number(tmp_path, sacred_id=9) == 9  # a free one is used as it is
    assert stored_number(tmp_path, sacred_id="a-name") == 10  # and never a name that is no number
    assert sorted(p.name for p in (tmp_path / "sacred").iterdir()) == ["1", "10", "3", "4", "9"]


def test_many_runs_in_the_same_second_never_share_a_directory(tmp_path):
    with ThreadPoolExecutor(8) as pool:
        paths = list(pool.map(lambda _: RunDirectory.create(tmp_path, "race", None, now=NOW).path, range(32)))
    assert len(set(paths)) == 32


def test_runs_started_together_never_share_a_number(tmp_path):
    # unrecorded runs of different names and recorded runs' storage, all at once
    def start(i: int) -> int:
        if i % 2:
            return stored_number(tmp_path)
        return number(RunDirectory.create(tmp_path, f"run{i}", None, now=NOW).path)

    with ThreadPoolExecutor(8) as pool:
        numbers = list(pool.map(start, range(40)))
    assert len(set(numbers)) == 40, sorted(numbers)


def test_a_number_another_run_takes_at_the_same_moment_is_given_up(tmp_path):
    def unrecorded_run_dir(n):  # while an unrecorded run makes its directory, a recorded run's storage takes sacred/1
        if n == 1:
            (tmp_path / "sacred" / "1").mkdir(parents=True)
        return Path(RunDirectory.create(tmp_path, "late", n, now=NOW).path)

    assert claim_number(tmp_path, unrecorded_run_dir) == (2, tmp_path / "2026-11-25_09-05-03-late-2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2026-11-25_09-05-03-late-2", "sacred"]  # no late-1

    def storage_dir(n):  # while the storage makes sacred/7, an unrecorded run makes its directory numbered 7
        if n == 7:
            (tmp_path / "2026-11-25_09-05-03-early-7").mkdir()
        (tmp_path / "sacred" / str(n)).mkdir()
        return tmp_path / "sacred" / str(n)

    assert claim_number(tmp_path, storage_dir, first=7)[0] == 8
    assert not (tmp_path / "sacred" / "7").exists()


@pytest.mark.parametrize("bad", ["", None, 3])
def test_run_names_that_are_no_names(tmp_path, bad):
    with pytest.raises(OptionError, match="run_name must be a non-empty string of ASCII letters, digits and"):
        RunDirectory.create(tmp_path, bad, None)


@pytest.mark.parametrize(
    ("bad", "named", "suggested"),
    [
        ("a/b", "'/'", "a_b"),
        ("my run", "' '", "my_run"),
        ("C:\\runs", "':' '\\\\'", "C_runs"),
        ('what?<now>|"x"*', "'\"' '*' '<' '>' '?' '|'", "what_now_x_"),
        ("tab\there\n", "'\\t' '\\n'", "tab_here_"),
        ("   ", "' '", None),
    ],
)
def test_a_run_name_with_unsafe_characters_is_rejected_naming_them_and_a_safe_name(tmp_path, bad, named, suggested):
    with pytest.raises(OptionError) as raised:
        RunOptions(run_name=bad).check(resuming=True)
    message = str(raised.value)
    assert f"contains {named};" in message
    assert "so use only ASCII letters, digits and - _ . + = @ ," in message
    assert (f"(e.g. run_name={suggested!r})" in message) if suggested else ("e.g." not in message)
    with pytest.raises(OptionError):
        RunDirectory.create(tmp_path, bad, None)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("good", ["baseline", "lr=0.1,bs=32", "resnet-50_v2.1+aug", "me@night", "CON", "NUL", "..", "x."])
def test_safe_run_names_are_accepted_as_they_are(tmp_path, good):
    check_run_name(good)  # CON, NUL, trailing dots: harmless between the timestamp and the number
    RunOptions(run_name=good).check(resuming=True)
    assert safe_run_name(good) == good
    assert RunDirectory.create(tmp_path, good, None, now=NOW).path.name == f"2026-11-25_09-05-03-{good}-1"


def test_a_run_name_too_long_for_a_directory_name_is_rejected(tmp_path):
    check_run_name("x" * 200)
    with pytest.raises(OptionError, match="run_name is 201 characters long;.*at most 200"):
        RunOptions(run_name="x" * 201).check(resuming=True)


class NamedRecord(RunRecord):
    def __init__(self, cli_name):
        super().__init__({})
        self._cli_name = cli_name

    @property
    def cli_name(self):
        return self._cli_name


def test_an_unsafe_sacred_name_names_the_directory_in_a_safe_form_with_a_warning(tmp_path):
    options = RunOptions(save_path=tmp_path)
    with pytest.warns(UserWarning, match=r"-n 'my run/1' cannot be part of a directory name.*named 'my_run_1' instead"):
        run_dir = run_directory(options, NamedRecord("my run/1"), None)
    assert run_dir.name.endswith("-my_run_1-1")

    with pytest.warns(UserWarning, match="the run directory is given a random name instead"):
        run_dir = run_directory(options, NamedRecord("/// "), None)
    assert run_dir.name.endswith("-2") and "_" not in run_dir.name[len("2026-11-25_09-05-03") :]  # a random slug


def test_slugs_are_readable_and_leave_the_global_random_state_alone():
    random.seed(5)
    state = random.getstate()
    names = {random_run_name() for _ in range(5)}
    assert random.getstate() == state
    assert len(names) > 1
    for name in names:
        adjective, animal = name.split("-")
        assert adjective in ADJECTIVES and animal in ANIMALS
    assert len(set(ADJECTIVES)) == len(ADJECTIVES) >= 100 and len(set(ANIMALS)) == len(ANIMALS) >= 100
    assert all(word.isalpha() and word.islower() for word in ADJECTIVES + ANIMALS)  # safe in a directory name


def test_config_yaml_round_trips(tmp_path):
    import numpy as np

    config = {"model": {"sizes": (1, 2), "scale": np.float32(0.5)}, "seed": 3, "name": None}
    run_dir = RunDirectory.create(tmp_path, "cfg", None)
    written = run_dir.write_config(config)
    assert yaml.safe_load(written.read_text()) == {"model": {"sizes": [1, 2], "scale": 0.5}, "seed": 3, "name": None}
    assert plain_config(config)["model"]["sizes"] == [1, 2]
