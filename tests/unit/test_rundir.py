import datetime as dt
import random
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml

from blowtorch import OptionError
from blowtorch.rundir import RunDirectory, generate_slug, plain_config

NOW = dt.datetime(2026, 11, 25, 9, 5, 3)


def test_name_is_timestamp_name_and_sacred_id(tmp_path):
    run_dir = RunDirectory.create(tmp_path, "baseline", "7", now=NOW)
    assert run_dir.path.name == "2026-11-25_09-05-03-baseline-7"


def test_without_an_id_the_next_free_number_is_used(tmp_path):
    first = RunDirectory.create(tmp_path, "a", None, now=NOW)
    second = RunDirectory.create(tmp_path, "b", None, now=NOW)
    (tmp_path / "sacred").mkdir()
    third = RunDirectory.create(tmp_path, "a", 12, now=NOW)
    fourth = RunDirectory.create(tmp_path, "a", None, now=NOW)
    assert [p.path.name.rsplit("-", 1)[1] for p in (first, second, third, fourth)] == ["1", "2", "12", "13"]


def test_an_id_whose_directory_exists_falls_back_to_a_free_number(tmp_path):
    RunDirectory.create(tmp_path, "same", 1, now=NOW)
    again = RunDirectory.create(tmp_path, "same", 1, now=NOW)
    assert again.path.name == "2026-11-25_09-05-03-same-2"


def test_many_runs_in_the_same_second_never_share_a_directory(tmp_path):
    with ThreadPoolExecutor(8) as pool:
        paths = list(pool.map(lambda _: RunDirectory.create(tmp_path, "race", None, now=NOW).path, range(32)))
    assert len(set(paths)) == 32


@pytest.mark.parametrize("bad", ["", "   ", "a/b", "..", None, 3])
def test_run_names_that_cannot_name_a_directory(tmp_path, bad):
    with pytest.raises(OptionError):
        RunDirectory.create(tmp_path, bad, None)


def test_slugs_are_readable_and_leave_the_global_random_state_alone():
    random.seed(5)
    state = random.getstate()
    slugs = {generate_slug() for _ in range(5)}
    assert random.getstate() == state
    assert len(slugs) > 1
    assert all(slug.count("-") >= 1 and slug.replace("-", "").isalpha() for slug in slugs)


def test_config_yaml_round_trips(tmp_path):
    import numpy as np

    config = {"model": {"sizes": (1, 2), "scale": np.float32(0.5)}, "seed": 3, "name": None}
    run_dir = RunDirectory.create(tmp_path, "cfg", None)
    written = run_dir.write_config(config)
    assert yaml.safe_load(written.read_text()) == {"model": {"sizes": [1, 2], "scale": 0.5}, "seed": 3, "name": None}
    assert plain_config(config)["model"]["sizes"] == [1, 2]
