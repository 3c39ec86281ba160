"""The example scripts run as a user runs them: sacred's command line, flags, and what lands on disk."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import torch
import yaml

from tests.helpers import EXAMPLES, assert_ok, only_run_dir, read_json, run_python, sacred_run_dirs, write_script

CONFIGURED = EXAMPLES / "configured" / "train.py"


def test_minimal_example_trains_and_records_the_run(tmp_path):
    result = run_python(EXAMPLES / "minimal.py", cwd=tmp_path)
    assert_ok(result)
    run_dir = only_run_dir(tmp_path / "train_logs")
    assert run_dir.name.endswith("-1")
    run_json = read_json(tmp_path / "train_logs" / "sacred" / "1" / "run.json")
    assert run_json["status"] == "COMPLETED"
    assert run_json["experiment"]["name"] == "minimal"
    assert [source for source, _ in run_json["experiment"]["sources"]] == ["minimal.py"]
    # use_gpu=True is the default: a machine without CUDA gets one line, not a warning on every run
    if not torch.cuda.is_available():
        assert "INFO - blowtorch - CUDA is not available on this machine: training on the CPU" in result.stderr
        assert "Warning" not in result.stderr
    assert sorted(read_json(tmp_path / "train_logs" / "sacred" / "1" / "metrics.json")) == ["lr.main", "train.loss", "val.loss"]


def test_with_overrides_flags_and_local_sources(tmp_path):
    result = run_python(
        CONFIGURED, "with", "model.num_layers=4", "model.use_dropout=True", "quick",
        "-F", "my_runs", "-n", "deep-net", "-c", "four layers", "-l", "WARNING",
        cwd=tmp_path,
    )  # fmt: skip
    assert_ok(result)
    run_dir = only_run_dir(tmp_path / "train_logs")
    assert "-deep-net-" in run_dir.name
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["model"] == {"num_layers": 4, "width": 64, "use_dropout": True, "dropout": 0.2}
    assert config["train"]["max_epochs"] == 3 and config["data"]["samples"] == 1024  # the named config
    assert config["steps_per_epoch"] == 16 and config["seed"] == 123  # the scope, the seed
    assert "Dropout" in (run_dir / "model-summary.txt").read_text()
    source = (run_dir / "source.txt").read_text()
    assert "class MLP(nn.Module):" in source
    assert "def scope(data):" in source and "def quick():" in source  # the config scope and the named config too

    for base in (tmp_path / "my_runs", tmp_path / "train_logs" / "sacred"):  # -F adds to the default storage
        run_json = read_json(sacred_run_dirs(base)[0] / "run.json")
        assert run_json["status"] == "COMPLETED"
        assert run_json["experiment"]["name"] == "deep-net"
        assert run_json["meta"]["comment"] == "four layers"
        assert sorted(s for s, _ in run_json["experiment"]["sources"]) == ["model.py", "train.py"]
        assert read_json(sacred_run_dirs(base)[0] / "config.json") == config
        metrics = read_json(sacred_run_dirs(base)[0] / "metrics.json")
        assert metrics["val.accuracy"]["steps"] == [0, 1, 2]
    assert "INFO" not in result.stderr  # -l WARNING


def test_print_config_and_help_do_not_train(tmp_path):
    result = run_python(CONFIGURED, "print_config", "with", "quick", cwd=tmp_path)
    assert_ok(result)
    assert "samples = 1024" in result.stdout and "num_layers = 2" in result.stdout
    assert not (tmp_path / "train_logs").exists()

    result = run_python(CONFIGURED, "--help", cwd=tmp_path)
    assert_ok(result)
    assert "Usage:" in result.stdout and "--file_storage" in result.stdout
    assert not (tmp_path / "train_logs").exists()


def test_print_config_flag_prints_before_training(tmp_path):
    result = run_python(CONFIGURED, "-p", "with", "quick", "train.max_epochs=2", cwd=tmp_path)
    assert_ok(result)
    assert "max_epochs = 2" in result.stdout
    assert yaml.safe_load((only_run_dir(tmp_path / "train_logs") / "config.yaml").read_text())["train"]["max_epochs"] == 2


def test_misspelled_key_fails_with_sacreds_message_unless_forced(tmp_path):
    result = run_python(CONFIGURED, "with", "modle.num_layers=4", cwd=tmp_path)
    assert result.returncode == 1
    assert "Added new config entry that is not used anywhere" in result.stderr and "modle.num_layers=4" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "train_logs").exists()

    result = run_python(CONFIGURED, "with", "quick", "modle.num_layers=4", "train.max_epochs=2", "-f", cwd=tmp_path)
    assert_ok(result)
    assert yaml.safe_load((only_run_dir(tmp_path / "train_logs") / "config.yaml").read_text())["modle"] == {"num_layers": 4}

    result = run_python(CONFIGURED, "with", "modle.num_layers=4", "-d", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" in result.stderr and "ConfigError" in result.stderr


def test_unobserved_run_has_no_sacred_record_but_a_run_directory(tmp_path):
    result = run_python(CONFIGURED, "with", "quick", "train.max_epochs=2", "-u", cwd=tmp_path)
    assert_ok(result)
    assert not (tmp_path / "train_logs" / "sacred").exists()
    run_dir = only_run_dir(tmp_path / "train_logs")
    assert run_dir.name.endswith("-1")
    assert "unobserved" in (run_dir / "log.txt").read_text()


def test_same_script_and_seed_give_bit_identical_weights(tmp_path):
    for directory in ("a", "b", "c"):
        (tmp_path / directory).mkdir()
    assert_ok(run_python(EXAMPLES / "minimal.py", "-u", cwd=tmp_path / "a"))
    assert_ok(run_python(EXAMPLES / "minimal.py", "-u", cwd=tmp_path / "b"))
    assert_ok(run_python(EXAMPLES / "minimal.py", "-u", "with", "seed=7", cwd=tmp_path / "c"))
    weights = [
        torch.load(only_run_dir(tmp_path / d / "train_logs") / "checkpoints" / "latest.pt", weights_only=True)["model"]
        for d in ("a", "b", "c")
    ]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert not all(torch.equal(weights[0][k], weights[2][k]) for k in weights[0])


def test_runs_started_together_never_share_a_directory(tmp_path):
    command = [sys.executable, str(EXAMPLES / "minimal.py")]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    processes = [subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)]
    for process in processes:
        _, err = process.communicate(timeout=180)
        assert process.returncode == 0, err.decode()
    run_dirs = [p for p in (tmp_path / "train_logs").iterdir() if p.name != "sacred"]
    assert len(run_dirs) == 3
    assert sorted(p.name.rsplit("-", 1)[1] for p in run_dirs) == ["1", "2", "3"]
    assert [p.name for p in sacred_run_dirs(tmp_path / "train_logs" / "sacred")] == ["1", "2", "3"]


def test_progress_output_stays_small_in_captured_output(tmp_path):
    script = write_script(
        tmp_path,
        """
        import torch
        from blowtorch import Run

        run = Run(random_seed=1)

        @run.train_step
        def step(batch, model):
            return model(batch).pow(2).mean()

        @run.configure_optimizers
        def configure(model):
            return torch.optim.SGD(model.parameters(), lr=0.001)

        run(torch.nn.Linear(2, 1), [torch.ones(1, 2)] * 3000, max_epochs=3, use_gpu=False)
        """,
    )
    assert_ok(run_python(script, cwd=tmp_path))
    cout = (tmp_path / "train_logs" / "sacred" / "1" / "cout.txt").read_text()
    assert "epoch 2 train loss=" in cout
    assert len(cout) < 4000, cout  # 9000 steps, a handful of lines


def test_on_a_terminal_the_progress_bar_shows_the_running_loss(tmp_path):
    import pty

    script = write_script(
        tmp_path,
        """
        import time
        import torch
        from blowtorch import Run

        run = Run(random_seed=1)

        @run.train_step
        def step(batch, model):
            time.sleep(0.01)
            return model(batch).pow(2).mean()

        @run.configure_optimizers
        def configure(model):
            return torch.optim.SGD(model.parameters(), lr=0.001)

        run(torch.nn.Linear(2, 1), [torch.ones(1, 2)] * 150, max_epochs=2, use_gpu=False)
        """,
    )
    main, terminal = pty.openpty()
    process = subprocess.Popen([sys.executable, str(script), "-C", "no"], cwd=tmp_path, stdin=terminal, stdout=terminal, stderr=terminal)
    os.close(terminal)
    output = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the terminal closed: the process is done
            break
        if not chunk:
            break
        output += chunk
    assert process.wait(timeout=120) == 0
    text = output.decode(errors="replace")
    assert text.count("epoch 1 train:") >= 2  # a bar, redrawn in place
    assert re.search(r"epoch 1 train:\s+\d+%\|.*\| \d+/150 \[.*step/s, loss [\d.]+\]", text), text[-2000:]
    assert "epoch 1 train loss=" in text


TINY = """
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from blowtorch import Run

    run = Run(random_seed=1)


    @run.train_step
    @run.validate_step
    def step(batch, model):
        return ((model(batch[0]) - batch[1]) ** 2).mean()


    @run.configure_optimizers
    def configure(model):
        return torch.optim.SGD(model.parameters(), lr=0.1)


    data = DataLoader(TensorDataset(torch.randn(8, 2), torch.randn(8, 1)), batch_size=4)
    run(torch.nn.Linear(2, 1), data, data, max_epochs=2, use_gpu=False)
"""


def test_run_directory_numbers_are_the_sacred_storage_numbers_and_never_repeat(tmp_path):
    script = write_script(tmp_path, TINY)
    for flags in (["-n", "plain"], ["-n", "filed", "-F", "other"], ["-n", "hidden", "-u"], ["-n", "again"]):
        assert_ok(run_python(script, *flags, cwd=tmp_path))

    save_path = tmp_path / "train_logs"
    numbers = {p.name.split("-")[-2]: int(p.name.rsplit("-", 1)[1]) for p in save_path.iterdir() if p.name != "sacred"}
    assert sorted(numbers) == ["again", "filed", "hidden", "plain"]
    assert len(set(numbers.values())) == 4, f"two run directories share a number: {numbers}"
    stored = sacred_run_dirs(save_path / "sacred")
    assert len(stored) == 3  # the -u run is recorded nowhere
    for directory in stored:  # a recorded run's directory carries the number of its sacred directory
        run_dir = Path(read_json(directory / "info.json")["run_dir"])
        assert run_dir.parent == save_path and int(run_dir.name.rsplit("-", 1)[1]) == int(directory.name)
    # the sacred id stays the one the first observer (-F other) assigned, and the run directory records it
    filed = next(p for p in save_path.iterdir() if "-filed-" in p.name)
    assert [p.name for p in sacred_run_dirs(tmp_path / "other")] == ["1"]
    assert "sacred run 1" in (filed / "log.txt").read_text()
    assert torch.load(filed / "checkpoints" / "latest.pt", weights_only=False)["sacred_run_id"] == "1"


def test_a_sacred_name_unsafe_for_a_directory_names_the_directory_in_a_safe_form(tmp_path):
    result = run_python(write_script(tmp_path, TINY), "-n", "my run/1", cwd=tmp_path)
    assert_ok(result)
    assert "the run directory is named 'my_run_1' instead" in result.stderr
    assert only_run_dir(tmp_path / "train_logs").name.endswith("-my_run_1-1")
    assert read_json(tmp_path / "train_logs" / "sacred" / "1" / "run.json")["experiment"]["name"] == "my run/1"


def test_an_unsafe_run_name_fails_naming_the_characters_and_a_safe_name(tmp_path):
    script = write_script(tmp_path, TINY.replace("use_gpu=False)", "use_gpu=False, run_name='lr 0.1/bs 32')"))
    result = run_python(script, cwd=tmp_path)
    assert result.returncode == 1
    assert "OptionError: run_name 'lr 0.1/bs 32' contains ' ' '/'" in result.stderr
    assert "(e.g. run_name='lr_0.1_bs_32')" in result.stderr
    assert not (tmp_path / "train_logs").exists()  # checked before the run is recorded: nothing in save_path
