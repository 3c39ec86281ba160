"""The same script under torchrun: real processes on the CPU with gloo (kept small: CI has 2 cores)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.helpers import REPO, assert_ok, only_run_dir, read_json, sacred_run_dirs, write_script

SCRIPT = """
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, TensorDataset
from blowtorch import Run

run = Run(random_seed=3, save_git_info=False)


@run.config
def settings():
    batch_size = 8
    max_epochs = 3
    samples = 48
    val_samples = 21  # not divisible by 2: each validation sample is still counted once
    shuffle = True
    resume = None
    save_path = "train_logs"
    accumulate = 1
    fail_on_rank = -1  # this rank raises at global step 5


@run.train_step
@run.validate_step
def step(batch, model, step):
    if step == 5 and dist.is_initialized() and dist.get_rank() == run["fail_on_rank"]:
        raise ValueError(f"rank {dist.get_rank()} cannot go on")
    x, y = batch
    return ((model(x) - y) ** 2).mean()


run.configure_optimizers(lambda model: torch.optim.SGD(model.parameters(), lr=0.05))
x = torch.randn(run["samples"], 3, generator=torch.Generator().manual_seed(0))
y = x.sum(1, keepdim=True) + 0.1
train_loader = DataLoader(TensorDataset(x, y), batch_size=run["batch_size"], shuffle=run["shuffle"])
val_loader = DataLoader(TensorDataset(x[: run["val_samples"]], y[: run["val_samples"]]), batch_size=4)
model = torch.nn.Linear(3, 1)
run(model, train_loader, val_loader, max_epochs=run["max_epochs"], use_gpu=False, optimize_first=True, progress=False,
    resume=run["resume"], save_path=run["save_path"], accumulate_grad_batches=run["accumulate"])
rank = dist.get_rank() if dist.is_initialized() else 0
torch.save(model.state_dict(), f"weights-{rank}.pt")
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def torchrun(script: Path, *args: str, cwd: Path, nproc: int = 2, launcher: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    launcher = launcher or ("--nproc-per-node", str(nproc), "--master-addr", "127.0.0.1", "--master-port", str(free_port()))
    command = [sys.executable, "-m", "torch.distributed.run", *launcher, str(script), *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def python(script: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, str(script), *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)


def validation_loss(state: dict[str, torch.Tensor], samples: int = 21) -> float:
    """The validation loss of these weights, evaluated by one process in float64."""
    x = torch.randn(48, 3, generator=torch.Generator().manual_seed(0))[:samples].double()
    y = x.sum(1, keepdim=True) + 0.1
    prediction = x @ state["weight"].double().T + state["bias"].double()
    return float(((prediction - y) ** 2).mean())


def test_two_processes_make_one_run_with_one_directory_and_equal_weights(tmp_path):
    script = write_script(tmp_path, SCRIPT)
    result = torchrun(script, cwd=tmp_path)
    assert_ok(result)
    run_dir = only_run_dir(tmp_path / "train_logs")  # one run directory
    assert [p.name for p in sacred_run_dirs(tmp_path / "train_logs" / "sacred")] == ["1"]  # one sacred run
    run_json = read_json(tmp_path / "train_logs" / "sacred" / "1" / "run.json")
    assert run_json["status"] == "COMPLETED"
    info = read_json(tmp_path / "train_logs" / "sacred" / "1" / "info.json")
    assert info["distributed"]["world_size"] == 2 and info["distributed"]["backend"] == "gloo"
    metrics = read_json(tmp_path / "train_logs" / "sacred" / "1" / "metrics.json")
    assert metrics["train.loss"]["steps"] == [0, 1, 2] and metrics["val.loss"]["steps"] == [0, 1, 2]
    assert result.stdout.count("Started run with ID") + result.stderr.count("Started run with ID") == 1
    first, second = weights(tmp_path / "weights-0.pt"), weights(tmp_path / "weights-1.pt")
    assert all(torch.equal(first[k], second[k]) for k in first)
    # every validation sample once, although 21 does not divide by 2: the single-process value of the same weights
    assert metrics["val.loss"]["values"][-1] == pytest.approx(validation_loss(first), rel=1e-5)
    checkpoint = torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=True)
    assert list(checkpoint["model"]) == ["weight", "bias"]  # the unwrapped module: no "module." prefix
    assert len(checkpoint["ranks"]) == 2


def test_two_processes_average_gradients_like_one_process_with_twice_the_batch(tmp_path):
    script = write_script(tmp_path, SCRIPT)
    assert_ok(torchrun(script, "with", "shuffle=False", "batch_size=4", "save_path=two", cwd=tmp_path))
    two = weights(tmp_path / "weights-0.pt")
    assert_ok(python(script, "with", "shuffle=False", "batch_size=8", cwd=tmp_path))
    one = weights(tmp_path / "weights-0.pt")
    for key in one:
        torch.testing.assert_close(two[key], one[key], atol=1e-5, rtol=0)


def test_accumulating_under_ddp_averages_like_one_process_with_the_whole_group_as_a_batch(tmp_path):
    """Two processes x batch 2 x 2 accumulated batches (no gradient sync on the first of each pair) ==
    one process with batch 8."""
    script = write_script(tmp_path, SCRIPT)
    assert_ok(torchrun(script, "with", "shuffle=False", "batch_size=2", "accumulate=2", "save_path=two", cwd=tmp_path))
    two, other_rank = weights(tmp_path / "weights-0.pt"), weights(tmp_path / "weights-1.pt")
    assert all(torch.equal(two[k], other_rank[k]) for k in two)  # the ranks stayed in step
    assert_ok(python(script, "with", "shuffle=False", "batch_size=8", cwd=tmp_path))
    one = weights(tmp_path / "weights-0.pt")
    for key in one:
        torch.testing.assert_close(two[key], one[key], atol=1e-5, rtol=0)


def test_an_error_on_one_rank_fails_the_run_once_with_that_ranks_traceback(tmp_path):
    script = write_script(tmp_path, SCRIPT)
    started = time.monotonic()
    result = torchrun(script, "with", "fail_on_rank=1", cwd=tmp_path)  # subprocess timeout: 300 s
    assert result.returncode != 0 and time.monotonic() - started < 120  # every process gone, nobody waits for ddp_timeout
    run_json = read_json(tmp_path / "train_logs" / "sacred" / "1" / "run.json")
    assert run_json["status"] == "FAILED"
    trace = "".join(run_json["fail_trace"])
    assert "rank 1 failed in epoch 1 at global step 5" in trace and "ValueError: rank 1 cannot go on" in trace
    log = (only_run_dir(tmp_path / "train_logs") / "log.txt").read_text()
    assert "rank 1 raised" in log and "ValueError: rank 1 cannot go on" in log and log.rstrip().endswith("run ended: FAILED")
    assert not list(only_run_dir(tmp_path / "train_logs").glob(".rank-*"))  # the report is consumed


def test_one_process_under_torchrun_trains_the_same_weights_as_plain_python(tmp_path):
    script = write_script(tmp_path, SCRIPT)
    assert_ok(torchrun(script, cwd=tmp_path, nproc=1))
    launched = weights(tmp_path / "weights-0.pt")
    assert_ok(python(script, cwd=tmp_path))
    plain = weights(tmp_path / "weights-0.pt")
    assert all(torch.equal(launched[k], plain[k]) for k in plain)


def test_two_nodes_on_one_machine_train_like_one_node_with_two_processes(tmp_path):
    script = write_script(tmp_path, SCRIPT)
    assert_ok(torchrun(script, cwd=tmp_path))
    one_node = weights(tmp_path / "weights-0.pt")
    endpoint = f"127.0.0.1:{free_port()}"
    launcher = ("--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint, "--rdzv-id", "two")
    nodes = [
        subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", *launcher, str(script), "with", f"save_path=node{n}"],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for n in range(2)
    ]  # fmt: skip
    outputs = [node.communicate(timeout=300) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs
    two_nodes = weights(tmp_path / "weights-0.pt")
    assert all(torch.equal(one_node[k], two_nodes[k]) for k in one_node)


def test_checkpoints_resume_across_world_sizes_at_an_epoch_end(tmp_path):
    script = write_script(tmp_path, SCRIPT)
    assert_ok(torchrun(script, "with", "max_epochs=2", cwd=tmp_path))
    run_dir = only_run_dir(tmp_path / "train_logs")
    single = python(script, "with", "max_epochs=3", f"resume={run_dir}", cwd=tmp_path)  # 2 processes -> 1
    assert_ok(single)
    assert "was written by 2 process(es), this run has 1: it continues from the same weights" in single.stderr
    assert torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=True)["epoch"] == 2
    again = torchrun(script, "with", "max_epochs=4", f"resume={run_dir}", cwd=tmp_path)  # 1 -> 2
    assert_ok(again)
    assert "was written by 1 process(es), this run has 2: it continues from the same weights" in again.stderr
    assert torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=True)["epoch"] == 3


HOLDING_SCRIPT = """
import os
import time
from pathlib import Path
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, TensorDataset
from blowtorch import Run

run = Run(random_seed=3, save_git_info=False)


@run.config
def settings():
    max_epochs = 3
    hold_at_step = -1  # every rank writes its pid to holding-<rank>, then waits for 'release'


@run.train_step
@run.validate_step
def step(batch, model, step, is_validate):
    if step == run["hold_at_step"] and not is_validate:
        Path(f"holding-{dist.get_rank()}").write_text(str(os.getpid()))
        deadline = time.monotonic() + 120
        while not Path("release").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    x, y = batch
    return ((torch.nn.functional.dropout(model(x), 0.2) - y) ** 2).mean()  # a random stream per rank


run.configure_optimizers(lambda model: torch.optim.SGD(model.parameters(), lr=0.05))
x = torch.randn(48, 3, generator=torch.Generator().manual_seed(0))
y = x.sum(1, keepdim=True)
model = torch.nn.Linear(3, 1)
run(model, DataLoader(TensorDataset(x, y), batch_size=4, shuffle=True), DataLoader(TensorDataset(x[:9], y[:9]), batch_size=4),
    max_epochs=run["max_epochs"], use_gpu=False, progress=False, checkpoint_every_n_steps=2)
torch.save(model.state_dict(), f"weights-{dist.get_rank()}.pt")
"""


def test_sigterm_to_the_launcher_inside_an_epoch_stops_every_rank_and_resume_auto_continues_bit_identically(tmp_path):
    straight_dir, split_dir = tmp_path / "straight", tmp_path / "split"
    straight_dir.mkdir(), split_dir.mkdir()
    assert_ok(torchrun(write_script(straight_dir, HOLDING_SCRIPT), cwd=straight_dir))
    script = write_script(split_dir, HOLDING_SCRIPT)
    port = str(free_port())
    launcher = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1", "--master-port", port,
         str(script), "--resume", "auto", "with", "hold_at_step=8"],  # a cluster job's command: nothing to continue yet
        cwd=split_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not all((split_dir / f"holding-{rank}").exists() for rank in (0, 1)):  # both ranks inside step 8
            assert launcher.poll() is None, launcher.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        launcher.send_signal(signal.SIGTERM)  # torchrun forwards it to every rank
        (split_dir / "release").write_text("")
        _, stderr = launcher.communicate(timeout=120)
    finally:
        launcher.kill()
    run_dir = only_run_dir(split_dir / "train_logs")
    assert read_json(split_dir / "train_logs" / "sacred" / "1" / "run.json")["status"] == "INTERRUPTED"
    checkpoint = torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=True)
    assert checkpoint["position"] is not None and checkpoint["state"]["global_step"] == 9, stderr  # at the end of step 8, on both ranks
    assert stderr.count("To resume:") == 1  # rank 0 says it, once
    assert f"To resume: torchrun --nproc-per-node 2 {script} --resume {run_dir}" in stderr
    assert stderr.count("resume=auto: no unfinished run of experiment 'train'") == 1

    requeued = torchrun(script, "--resume", "auto", "with", "hold_at_step=8", cwd=split_dir)  # the same command again
    assert_ok(requeued)
    assert requeued.stderr.count(f"resume=auto: continuing {run_dir} (INTERRUPTED at epoch 1)") == 1
    straight, resumed = weights(straight_dir / "weights-0.pt"), weights(split_dir / "weights-0.pt")
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    assert torch.equal(weights(split_dir / "weights-1.pt")["weight"], resumed["weight"])


SIGNAL_DURING_A_CHECKPOINT = """
import os
import signal
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, TensorDataset
from blowtorch import Run

run = Run(random_seed=3, save_git_info=False)
steps_done = 0


class Model(torch.nn.Linear):
    def state_dict(self, *args, **kwargs):  # rank 0 writes the checkpoints: it gets a SIGTERM while writing the one after step 4
        if dist.get_rank() == 0 and steps_done == 4:
            os.kill(os.getpid(), signal.SIGTERM)
        return super().state_dict(*args, **kwargs)


@run.train_step
def step(batch, model):
    global steps_done
    steps_done += 1
    x, y = batch
    return ((model(x) - y) ** 2).mean()


run.configure_optimizers(lambda model: torch.optim.SGD(model.parameters(), lr=0.05))
x = torch.randn(48, 3, generator=torch.Generator().manual_seed(0))
run(Model(3, 1), DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=4), max_epochs=2, use_gpu=False,
    progress=False, optimize_first=True, checkpoint_every_n_steps=2)
"""


def test_a_signal_to_one_rank_while_it_writes_a_checkpoint_stops_every_rank_after_the_next_step(tmp_path):
    # The ranks agreed to go on after step 4 before rank 0 got the signal: stopping on it alone there
    # would leave rank 1 waiting in the next step's collectives. All agree after step 5 and stop there.
    result = torchrun(write_script(tmp_path, SIGNAL_DURING_A_CHECKPOINT), cwd=tmp_path)
    assert result.returncode != 0 and result.stderr.count("To resume:") == 1, result.stderr
    assert "collective mismatch" not in result.stderr and "SIGABRT" not in result.stderr  # what stopping alone led to
    assert read_json(tmp_path / "train_logs" / "sacred" / "1" / "run.json")["status"] == "INTERRUPTED"
    checkpoint = torch.load(only_run_dir(tmp_path / "train_logs") / "checkpoints" / "latest.pt", weights_only=True)
    assert checkpoint["state"]["global_step"] == 5 and checkpoint["position"]["batches_done"] == 5


def test_a_rank_killed_without_a_python_error_fails_the_run_with_an_explanation(tmp_path):
    script = write_script(tmp_path, HOLDING_SCRIPT)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
               "--master-port", str(free_port()), str(script), "with", "hold_at_step=8"]  # fmt: skip
    launcher = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not all((tmp_path / f"holding-{rank}").exists() for rank in (0, 1)):
            assert launcher.poll() is None, launcher.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        os.kill(int((tmp_path / "holding-1").read_text()), signal.SIGKILL)  # no exception, no report: just gone
        (tmp_path / "release").write_text("")
        launcher.communicate(timeout=120)
    finally:
        launcher.kill()
    assert launcher.returncode != 0
    run_json = read_json(tmp_path / "train_logs" / "sacred" / "1" / "run.json")
    assert run_json["status"] == "FAILED"  # recorded, although torchrun sends rank 0 a SIGTERM when rank 1 dies
    trace = "".join(run_json["fail_trace"])
    assert "the processes of this run lost each other in epoch 1" in trace and "torchrun's output names the rank" in trace
    run_dir = only_run_dir(tmp_path / "train_logs")
    assert read_json(run_dir / "status.json")["status"] == "FAILED"
    assert "lost each other" in (run_dir / "log.txt").read_text()


SLURM_SCRIPT = """
import signal
import time
from pathlib import Path
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, TensorDataset
from blowtorch import Run

run = Run(save_git_info=False)


@run.config
def settings():
    optim = {"lr": 0.01}
    hold_at_step = 8  # every rank says so in holding-<rank>, then waits until blowtorch has seen a SIGTERM


@run.train_step
def step(batch, model, step):
    if step == run["hold_at_step"]:
        Path(f"holding-{dist.get_rank()}").write_text("")
        stop = signal.getsignal(signal.SIGTERM).__self__  # the StopRequest installed while training
        deadline = time.monotonic() + 120
        while not stop.requested and time.monotonic() < deadline:
            time.sleep(0.01)
    x, y = batch
    return ((model(x) - y) ** 2).mean()


run.configure_optimizers(lambda model: torch.optim.SGD(model.parameters(), lr=run["optim"]["lr"]))
x = torch.randn(48, 3, generator=torch.Generator().manual_seed(0))
y = x.sum(1, keepdim=True)
run(torch.nn.Linear(3, 1), DataLoader(TensorDataset(x, y), batch_size=4, shuffle=True), max_epochs=3, use_gpu=False,
    progress=False, optimize_first=True, checkpoint_every_n_steps=2)
"""


def slurm_job_script() -> str:
    readme = (REPO / "README.md").read_text()
    (script,) = [block for block in re.findall(r"```bash\n(.*?)```", readme, re.S) if "#SBATCH" in block]
    return script


def test_the_readmes_slurm_job_stops_at_its_time_limit_requeues_itself_and_then_continues(tmp_path):
    """The README's sbatch script, run by bash as sbatch would, with stand-ins for srun (one task on this
    machine) and scontrol (records the requeue); the training, torchrun and blowtorch are real."""
    tools = tmp_path / "slurm-stand-ins"
    tools.mkdir()
    (tools / "srun").write_text('#!/bin/sh\nexec "$@"\n')
    (tools / "scontrol").write_text(
        '#!/bin/sh\ncase "$1" in\n  show) echo 127.0.0.1 ;;\n  requeue) echo "requeue $2" >> requeued ;;\nesac\n'
    )
    for tool in tools.iterdir():
        tool.chmod(0o755)
    job = tmp_path / "job.sh"
    job.write_text(slurm_job_script())
    write_script(tmp_path, SLURM_SCRIPT)
    env = {
        **os.environ,
        "PATH": f"{tools}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "SLURM_JOB_ID": "77", "SLURM_JOB_NODELIST": "node1", "SLURM_NNODES": "1", "SLURM_GPUS_ON_NODE": "2",
        "PYTHONUNBUFFERED": "1",
    }  # fmt: skip

    first = subprocess.Popen(["bash", str(job)], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not all((tmp_path / f"holding-{rank}").exists() for rank in (0, 1)):
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        first.send_signal(signal.SIGTERM)  # what --signal=B:TERM@120 sends 120 s before the time limit
        _, stderr = first.communicate(timeout=120)
    finally:
        first.kill()
    assert (tmp_path / "requeued").read_text() == "requeue 77\n", stderr
    run_dir = only_run_dir(tmp_path / "train_logs")
    assert read_json(run_dir / "status.json")["status"] == "INTERRUPTED", stderr
    assert "resume=auto: no unfinished run of experiment 'train'" in stderr

    requeued = subprocess.run(["bash", str(job)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert_ok(requeued)
    assert f"resume=auto: continuing {run_dir} (INTERRUPTED at epoch" in requeued.stderr
    status = read_json(run_dir / "status.json")
    assert (status["status"], status["epoch"], status["sacred_run_id"]) == ("COMPLETED", 3, "2")
    assert read_json(tmp_path / "train_logs" / "sacred" / "2" / "config.json")["optim"] == {"lr": 0.1}  # the job's `with`
    assert (tmp_path / "requeued").read_text() == "requeue 77\n"  # the run completed: not requeued again
