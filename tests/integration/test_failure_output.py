"""An error inside run(...) ends the script as sacred's command line ends it: the user's frames, exit 1; -d shows all."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.helpers import read_json, run_python, write_script

SCRIPT = """
import torch
from torch.utils.data import DataLoader, TensorDataset
from blowtorch import Run

run = Run(random_seed=1, save_git_info=False)

@run.train_step
def step(batch, model):
    x, y = batch
    return ((model(x) - y) ** 2).mean() * STEP_FACTOR

run.configure_optimizers(lambda model: torch.optim.SGD(model.parameters(), lr=0.1))
data = DataLoader(TensorDataset(torch.randn(8, 2), torch.randn(8, 1)), batch_size=4)
run(torch.nn.Linear(2, 1), data, max_epochs=2, use_gpu=False, progress=False, optimize_metric=OPTIMIZE_METRIC)
"""

BAD_OPTION = "OptionError: optimize_metric 'acc' is not among the training metrics ['loss']; pass one of those"


def frames(stderr: str) -> list[str]:
    """The files of the traceback's frames, in order."""
    return re.findall(r'^  File "([^"]+)", line \d+', stderr, flags=re.MULTILINE)


def script_with(tmp_path, step_factor: str = "1", optimize_metric: str = "None"):
    return write_script(tmp_path, SCRIPT.replace("STEP_FACTOR", step_factor).replace("OPTIMIZE_METRIC", optimize_metric))


def failed_run(tmp_path) -> dict:
    run_json = read_json(tmp_path / "train_logs" / "sacred" / "1" / "run.json")
    assert run_json["status"] == "FAILED"
    return run_json


def test_a_bad_option_shows_the_message_and_the_scripts_frame_and_exits_with_1(tmp_path):
    script = script_with(tmp_path, optimize_metric="'acc'")
    result = run_python(script, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert BAD_OPTION in result.stderr
    assert "blowtorch's and sacred's frames hidden, -d shows them" in result.stderr
    assert frames(result.stderr) == [str(script)]  # only the run(...) line of the script
    # sacred's record keeps the whole story
    assert "blowtorch/loop.py" in "".join(failed_run(tmp_path)["fail_trace"])


def test_with_d_the_error_is_raised_with_every_frame(tmp_path):
    script = script_with(tmp_path, optimize_metric="'acc'")
    result = run_python(script, "-d", cwd=tmp_path)
    assert result.returncode == 1 and BAD_OPTION in result.stderr
    files = frames(result.stderr)
    assert files[0] == str(script)
    assert any(f.endswith("blowtorch/run.py") for f in files) and any(f.endswith("sacred/run.py") for f in files)
    assert files[-1].endswith("blowtorch/metrics.py")  # where the option was found wrong
    failed_run(tmp_path)


def test_an_error_in_the_step_function_shows_the_users_frames(tmp_path):
    script = script_with(tmp_path, step_factor="(1 / 0)")
    result = run_python(script, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert frames(result.stderr) == [str(script), str(script)]  # run(...), then the step
    assert "in step\n" in result.stderr and "ZeroDivisionError: division by zero" in result.stderr
    assert "ZeroDivisionError" in failed_run(tmp_path)["fail_trace"][-1]


@pytest.mark.parametrize("argument", ["-D", "--pdb"])
def test_pdb_opens_post_mortem_at_the_error(tmp_path, argument):
    script = script_with(tmp_path, step_factor="(1 / 0)")
    result = subprocess.run(
        [sys.executable, str(script), argument], cwd=tmp_path, input="p x.shape\nq\n", capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 1, result.stderr
    assert "(Pdb) torch.Size([4, 2])" in result.stdout  # the debugger stopped in the user's step
    assert any(f.endswith("blowtorch/loop.py") for f in frames(result.stderr))  # the full traceback first
    failed_run(tmp_path)
