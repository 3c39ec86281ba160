"""Configuration through sacred (files < scopes < named configs < with) and the seed."""

from __future__ import annotations

import shutil

import pytest
import torch
import yaml

from blowtorch import ConfigError, ConfigKeyError, Run
from blowtorch.rundir import run_name_of
from tests.helpers import EXAMPLES, assert_ok, only_run_dir, read_json, regression_loaders, run_python, sacred_run_dirs, write_script


def write(path, text):
    path.write_text(text)
    return path


@pytest.fixture
def config_files(tmp_path):
    base = write(tmp_path / "base.yaml", "model:\n  num_layers: 2\n  width: 8\noptim:\n  lr: 0.1\nseed: 77\n")
    override = write(tmp_path / "override.yaml", "model:\n  width: 16\n")
    return [base, override]


def make_run(argv_tail=(), **kwargs):
    return Run(name="cfg", argv=["train.py", *argv_tail], save_git_info=False, **kwargs)


def test_files_merge_in_order_and_scopes_named_configs_and_with_win_in_that_order(config_files):
    run = make_run(["with", "small", "optim.lr=0.5"], config_files=config_files)

    @run.config
    def scope(model):
        depth_times_width = model["num_layers"] * model["width"]
        optim = {"lr": 0.2, "momentum": 0.9}

    @run.named_config
    def small():
        model = {"width": 4}
        optim = {"momentum": 0.5}

    assert run["model"] == {"num_layers": 2, "width": 4}  # file 1 < file 2 < named config
    assert run["model.num_layers"] == 2 and run["model"]["width"] == 4
    assert run["optim"] == {"lr": 0.5, "momentum": 0.5}  # scope < named < with
    assert run["depth_times_width"] == 8  # scopes compute from the final inputs
    assert run["seed"] == 77 == run.seed  # the files' seed, no random_seed given
    assert "model.width" in run and "model.depth" not in run


def test_missing_keys_name_the_key_and_the_keys_there_are(config_files):
    run = make_run(config_files=config_files)
    with pytest.raises(ConfigKeyError) as caught:
        run["model.depth"]
    assert "config key 'model.depth' does not exist; the keys under 'model' are ['num_layers', 'width']" in str(caught.value)
    with pytest.raises(KeyError, match="the keys at the top level are \\['model', 'optim', 'seed'\\]"):
        run["modle"]


def test_a_config_scope_registered_after_the_config_was_read_is_an_error(config_files):
    run = make_run(config_files=config_files)
    assert run["optim.lr"] == 0.1
    with pytest.raises(ConfigError, match="registered after the config was resolved"):

        @run.config
        def late():
            lr = 1


def test_unknown_with_key_fails_with_sacreds_message_unless_forced(config_files, capsys):
    run = make_run(["with", "modle.width=3"], config_files=config_files)
    with pytest.raises(SystemExit) as caught:
        run["model"]
    assert caught.value.code == 1
    err = capsys.readouterr().err
    assert "ConfigAddedError: Added new config entry that is not used anywhere" in err and "modle.width=3" in err
    assert "Traceback" not in err

    forced = make_run(["with", "modle.width=3", "-f"], config_files=config_files)
    assert forced["modle.width"] == 3

    debug = make_run(["with", "modle.width=3", "-d"], config_files=config_files)
    with pytest.raises(ConfigError, match='Added new config entry that is not used anywhere'):
        debug["model"]


@pytest.mark.parametrize(
    "argv_tail, random_seed, expected",
    [
        (["with", "seed=5"], 123, 5),  # the command line wins
        ([], 123, 123),  # then random_seed, over the files' 77
        ([], 0, 0),  # 0 is a seed
        ([], None, 77),  # then the files
    ],
)
def test_seed_precedence(config_files, argv_tail, random_seed, expected):
    run = make_run(argv_tail, config_files=config_files, random_seed=random_seed)
    assert run.seed == expected
    assert run["seed"] == expected


def test_without_any_seed_a_random_one_is_drawn_and_pinned(tmp_path):
    run = make_run()
    seed = run.seed
    assert isinstance(seed, int) and run["seed"] == seed
    assert make_run().seed != seed  # fresh seeds for fresh runs


def test_the_seed_is_applied_at_construction_so_models_built_first_are_reproducible():
    make_run(random_seed=42)
    first = torch.nn.Linear(8, 8).weight.detach().clone()
    torch.manual_seed(0)  # disturb the global generator between the two runs
    make_run(random_seed=42)
    second = torch.nn.Linear(8, 8).weight.detach().clone()
    make_run(random_seed=43)
    third = torch.nn.Linear(8, 8).weight.detach().clone()
    assert torch.equal(first, second) and not torch.equal(first, third)


NAMED = """\
    import os
    import random

    import torch
    from blowtorch import Run

    run = Run(random_seed=3)
    run.train_step(lambda batch, model: (model(batch[0]) - batch[1]) ** 2)
    run.configure_optimizers(lambda model: torch.optim.SGD(model.parameters(), lr=0.1))
    summary = run(torch.nn.Linear(2, 1), [(torch.randn(4, 2), torch.randn(4, 1))], max_epochs=1, progress=False,
                  run_name=os.environ.get("RUN_NAME"))
    print(os.path.basename(summary["run_dir"]), random.random())
"""


def test_a_random_run_name_differs_per_run_and_never_draws_from_the_seeded_random(tmp_path):
    script = write_script(tmp_path, NAMED)

    def run_dir_and_next_random(**env: str) -> tuple[str, str]:
        result = run_python(script, cwd=tmp_path, env=env)  # a fresh process each time
        assert_ok(result)
        name, value = result.stdout.split()[-2:]
        return name, value

    first, first_value = run_dir_and_next_random()
    second, second_value = run_dir_and_next_random()
    named, named_value = run_dir_and_next_random(RUN_NAME="fixed")
    assert run_name_of(named) == "fixed"
    slugs = [run_name_of(name) or "" for name in (first, second)]
    assert slugs[0] != slugs[1] and all(part.isalpha() for slug in slugs for part in slug.split("-"))
    assert first_value == second_value == named_value  # the same seeded stream, with or without a random name


def test_a_named_config_that_changes_the_seed_is_an_error():
    run = make_run(["with", "lucky"], random_seed=1)

    @run.named_config
    def lucky():
        seed = 7

    with pytest.raises(ConfigError, match="sets seed=7, but the seed was fixed to 1 when Run\\(\\) was constructed"):
        run["seed"]


@pytest.mark.parametrize(
    "argv_tail, message", [(["with", "seed=abc"], "must be an int, got 'abc'"), (["with", "seed=-1"], "between 0 and 2**32 - 1")]
)
def test_bad_seeds(argv_tail, message):
    with pytest.raises(ConfigError) as caught:
        make_run(argv_tail)
    assert message in str(caught.value)


def test_interactive_use_needs_a_name():
    namespace: dict = {"Run": Run}
    with pytest.raises(ConfigError, match="pass a name"):
        exec("Run(argv=['x'])", namespace)
    exec("run = Run(name='notebook', argv=['x'], save_git_info=False)", namespace)
    assert namespace["run"].experiment.path == "notebook"


def test_config_yaml_is_the_resolved_config_and_works_as_a_config_file(tmp_path, config_files):
    run = make_run(["with", "model.num_layers=5"], config_files=config_files)

    @run.train_step
    def step(batch, model):
        return ((model(batch[0]) - batch[1]) ** 2).mean()

    @run.configure_optimizers
    def configure(model):
        return torch.optim.SGD(model.parameters(), lr=run["optim.lr"])

    run(torch.nn.Linear(4, 1), regression_loaders()[0], max_epochs=2, use_gpu=False)
    written = only_run_dir(tmp_path / "train_logs") / "config.yaml"
    expected = {"model": {"num_layers": 5, "width": 16}, "optim": {"lr": 0.1}, "seed": 77}
    assert yaml.safe_load(written.read_text()) == expected
    assert make_run(config_files=[written]).get_config().to_dict() == expected
    sacred_config = read_json(sacred_run_dirs(tmp_path / "train_logs" / "sacred")[0] / "config.json")
    assert sacred_config == expected


@pytest.mark.parametrize("key", ["model.num_layers", "model"])
def test_setting_a_config_value_through_the_run_is_the_same_read_only_error(config_files, key):
    run = make_run(config_files=config_files)
    with pytest.raises(ConfigError, match="the resolved config is read-only"):
        run[key] = 3
    with pytest.raises(ConfigError, match="the resolved config is read-only"):
        run["model"]["num_layers"] = 3
    assert run["model.num_layers"] == 2


def test_resume_repeats_the_runs_command_line_on_the_current_config_files(tmp_path):
    """`--resume` re-resolves the run's named configs and `with` updates with today's config files
    and scopes: an edited YAML takes effect, derived values follow a new `with`, the seed is kept,
    and one warning lists every difference to the checkpoint's config."""
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    script = tmp_path / "examples" / "configured" / "train.py"
    assert_ok(run_python(script, "with", "quick", "train.max_epochs=2", "data.batch_size=128", cwd=tmp_path))
    run_dir = only_run_dir(tmp_path / "train_logs")
    first = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert (first["data"]["samples"], first["steps_per_epoch"]) == (1024, 8)  # `quick`, and the scope's 1024 // 128
    defaults = script.parent / "config" / "default.yaml"
    defaults.write_text(defaults.read_text().replace("weight_decay: 0.0", "weight_decay: 0.01"))

    resumed = run_python(script, "--resume", str(run_dir), "with", "data.batch_size=64", "train.max_epochs=3", cwd=tmp_path)
    assert_ok(resumed)
    warning = resumed.stderr[resumed.stderr.index("differs from the config of the checkpoint") :]
    listed = [line.strip() for line in warning.splitlines()[1:] if line.startswith("  ")]
    assert listed[:4] == [
        "data.batch_size: 128 -> 64",
        "optim.weight_decay: 0.0 -> 0.01",  # the edited file
        "steps_per_epoch: 8 -> 16",  # derived by the config scope from the new batch size
        "train.max_epochs: 2 -> 3",
    ]
    assert "optimizer 'main' weight_decay: 0.0 -> 0.01" in warning  # and the optimizer takes it
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["data"]["samples"] == 1024 and config["seed"] == first["seed"]  # `quick` repeated, seed kept
    meta = read_json(sacred_run_dirs(tmp_path / "train_logs" / "sacred")[-1] / "run.json")["meta"]
    assert meta["named_configs"] == ["quick"]
    assert meta["config_updates"]["data"] == {"batch_size": 64} and meta["config_updates"]["train"] == {"max_epochs": 3}
