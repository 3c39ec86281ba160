"""Run() in a real Jupyter kernel (started locally by nbclient), and with no command line at all."""

from __future__ import annotations

import pytest
from nbclient.exceptions import CellExecutionError

from blowtorch import Run, UsageError
from tests.helpers import assert_ok, execute_notebook, only_run_dir, read_json, run_python, sacred_run_dirs, write_script

TRAIN_CELL = """
import torch
from torch.utils.data import DataLoader, TensorDataset
from blowtorch import Run

run = Run(config_files=["config.yaml"], name="nb", random_seed=1)

@run.train_step
@run.validate_step
def step(batch, model):
    x, y = batch
    return ((model(x) - y) ** 2).mean()

@run.configure_optimizers
def configure_optimizers(model):
    return torch.optim.SGD(model.parameters(), lr=run["optim.lr"])

data = TensorDataset(torch.randn(8, 2), torch.randn(8, 1))
loaders = DataLoader(data, batch_size=4), DataLoader(data, batch_size=4)
summary = run(torch.nn.Linear(2, 1), *loaders, max_epochs=2, use_gpu=False, save_path=SAVE_PATH)
print(run["optim.lr"], summary["epochs"])
"""


def test_a_notebook_trains_without_a_command_line(tmp_path):
    (tmp_path / "config.yaml").write_text("optim:\n  lr: 0.05\n")
    save_path = tmp_path / "logs"
    # the kernel's own argv (ipykernel_launcher.py -f kernel-....json) is not the experiment's command line
    outputs = execute_notebook([f"SAVE_PATH = {str(save_path)!r}", TRAIN_CELL, TRAIN_CELL], tmp_path)
    assert outputs[1].split() == ["0.05", "2"] == outputs[2].split()  # the config, and the epochs trained
    runs = sacred_run_dirs(save_path / "sacred")
    assert [p.name for p in runs] == ["1", "2"]  # running the cell again is a new run
    for sacred_dir in runs:
        run_json = read_json(sacred_dir / "run.json")
        assert run_json["status"] == "COMPLETED" and run_json["experiment"]["name"] == "nb"
        assert read_json(sacred_dir / "config.json")["optim"] == {"lr": 0.05}
    for run_dir in (p for p in save_path.iterdir() if p.name != "sacred"):
        assert "epoch 1 val" in (run_dir / "log.txt").read_text()


def test_in_a_notebook_a_failing_run_raises_its_error(tmp_path):
    (tmp_path / "config.yaml").write_text("optim:\n  lr: 0.05\n")
    failing = TRAIN_CELL.replace("use_gpu=False", "use_gpu=False, optimize_metric='acc'")
    with pytest.raises(CellExecutionError) as caught:
        execute_notebook([f"SAVE_PATH = {str(tmp_path / 'logs')!r}", failing], tmp_path)
    assert caught.value.ename == "OptionError"  # the error itself, for %debug; not a SystemExit
    assert caught.value.evalue.startswith("optimize_metric 'acc' is not among the training metrics")
    assert read_json(tmp_path / "logs" / "sacred" / "1" / "run.json")["status"] == "FAILED"


def test_an_empty_argv_is_no_command_line(tmp_path):
    script = write_script(
        tmp_path,
        """
        import torch
        from torch.utils.data import DataLoader, TensorDataset
        from blowtorch import Run

        run = Run(name="x", argv=[], random_seed=1, save_git_info=False)
        run.train_step(lambda batch, model: ((model(batch[0]) - batch[1]) ** 2).mean())
        run.configure_optimizers(lambda model: torch.optim.SGD(model.parameters(), lr=0.1))
        data = TensorDataset(torch.randn(8, 2), torch.randn(8, 1))
        run(torch.nn.Linear(2, 1), DataLoader(data, batch_size=4), max_epochs=2, use_gpu=False)
        """,
    )
    # the process's arguments are not read: a command that does not exist would fail the run
    assert_ok(run_python(script, "no_such_command", cwd=tmp_path))
    assert (only_run_dir(tmp_path / "train_logs") / "log.txt").is_file()
    assert read_json(tmp_path / "train_logs" / "sacred" / "1" / "run.json")["experiment"]["name"] == "x"


@pytest.mark.parametrize("argv", [[], ""])
def test_no_command_line_resolves_the_config(argv):
    run = Run(name="x", argv=argv, random_seed=3, save_git_info=False)
    assert run["seed"] == 3 and run.experiment.path == "x"


@pytest.mark.parametrize("argv", [["with", "lr=0.1"], "with lr=0.1", ["-u"], ["print_config"]])
def test_an_argv_without_a_program_name_is_an_error_that_shows_the_fix(argv):
    with pytest.raises(UsageError, match=r"starts with the program name, like sys.argv.*e\.g\. argv=\['train.py', "):
        Run(name="x", argv=argv, save_git_info=False)
