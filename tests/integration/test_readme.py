"""The README's examples run as written."""

from __future__ import annotations

import math
import re
import shlex
import shutil

import pytest
import torch

from blowtorch import Run
from tests.helpers import EXAMPLES, REPO, assert_ok, execute_notebook, only_run_dir, read_json, regression_loaders, run_python

README = (REPO / "README.md").read_text()


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def test_the_minimal_example_in_the_readme_is_the_example_script_and_runs(tmp_path):
    block = next(b for b in code_blocks("python") if "make_dataset" in b)
    script = EXAMPLES.joinpath("minimal.py").read_text()
    for line in block.splitlines():  # every line of the README's version is in the script
        assert line in script, line
    (tmp_path / "readme_minimal.py").write_text(block)
    assert_ok(run_python(tmp_path / "readme_minimal.py", "-u", cwd=tmp_path))
    assert (only_run_dir(tmp_path / "train_logs") / "checkpoints" / "best.pt").is_file()


def test_the_notebook_example_in_the_readme_runs_in_a_jupyter_kernel(tmp_path):
    block = next(b for b in code_blocks("python") if 'Run(name="demo"' in b)
    execute_notebook([block, "print(summary['epochs'])"], tmp_path)
    assert (only_run_dir(tmp_path / "train_logs") / "log.txt").is_file()
    assert read_json(tmp_path / "train_logs" / "sacred" / "1" / "run.json")["status"] == "COMPLETED"


def test_the_example_commands_in_the_readme_run(tmp_path):
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    commands = [
        line.split("#")[0].strip()
        for block in code_blocks("shell")
        for line in block.splitlines()
        if line.startswith("python examples/")
    ]
    assert len(commands) >= 6
    for command in commands:
        arguments = shlex.split(command)[1:]
        if "configured" in arguments[0] and "print_config" not in arguments:
            arguments += ["quick", "train.max_epochs=2"] if "with" in arguments else ["with", "quick", "train.max_epochs=2"]
        assert_ok(run_python(tmp_path / arguments[0], *arguments[1:], cwd=tmp_path))


def test_the_csv_logger_in_the_readme_works(tmp_path):
    block = next(b for b in code_blocks("python") if "class CSVLogger" in b)
    namespace: dict = {}
    exec(block, namespace)
    run = Run(name="csv", argv=["csv.py"], random_seed=1, save_git_info=False)

    @run.train_step
    @run.validate_step
    def step(batch, model):
        return ((model(batch[0]) - batch[1]) ** 2).mean()

    run.configure_optimizers(lambda model: torch.optim.SGD(model.parameters(), lr=0.01))
    run(torch.nn.Linear(4, 1), *regression_loaders(), max_epochs=2, use_gpu=False, loggers=[namespace["CSVLogger"]()])
    rows = (run.run_dir / "metrics.csv").read_text().splitlines()
    assert [row.split(",")[2] for row in rows] == ["train.loss", "lr.main", "val.loss"] * 2


def test_extending_the_configured_examples_cosine_run_keeps_training(tmp_path):
    """Resuming with a larger max_epochs: the cosine schedule follows the new T_max instead of the
    checkpoint's finished one, which would train every later epoch at learning rate 0."""
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    script = tmp_path / "examples" / "configured" / "train.py"
    assert_ok(run_python(script, "with", "quick", "train.max_epochs=2", cwd=tmp_path))
    run_dir = only_run_dir(tmp_path / "train_logs")
    resumed = run_python(script, "--resume", str(run_dir), "with", "train.max_epochs=4", cwd=tmp_path)
    assert_ok(resumed)
    assert "train.max_epochs: 2 -> 4" in resumed.stderr
    assert "scheduler 'main' (CosineAnnealingLR) T_max: 1 -> 3" in resumed.stderr
    log = (run_dir / "log.txt").read_text()
    rates = {int(m[1]): float(m[2]) for m in re.finditer(r"epoch (\d) lr +main=(\S+)", log)}
    assert rates[1] == 0.003  # the first run: one optimizing epoch, then the cosine ends at 0
    assert rates[2] == pytest.approx(0.003 * (1 + math.cos(math.pi / 3)) / 2)  # the new schedule, at its epoch 1
    assert rates[3] == pytest.approx(0.003 * (1 + math.cos(2 * math.pi / 3)) / 2)
    losses = [float(m[1]) for m in re.finditer(r"epoch \d train +loss=(\S+)", log)]
    assert len(losses) == 4 and losses[3] < losses[2] < losses[1]  # still learning


def test_the_training_faster_example_runs(tmp_path):
    block = next(b for b in code_blocks("python") if "accumulate_grad_batches=4" in b)
    run = Run(name="faster", argv=["faster.py"], random_seed=1, save_git_info=False)

    @run.train_step
    @run.validate_step
    def step(batch, model):
        return ((model(batch[0]) - batch[1]) ** 2).mean()

    run.configure_optimizers(lambda model: torch.optim.SGD(model.parameters(), lr=0.05))
    train_loader, val_loader = regression_loaders()
    exec(block, {"run": run, "model": torch.nn.Linear(4, 1), "train_loader": train_loader, "val_loader": val_loader})
    log = (run.run_dir / "log.txt").read_text()
    assert "epoch 19 train" in log and "grad_norm=" in log
