"""blowtorch under torchrun against a hand-written DistributedDataParallel loop on the same data.

Part ``ddp`` of ``python -m benchmarks``. Each measurement is a fresh ``torchrun --nproc-per-node 2``
launch (gloo, CPU, one thread per process); rounds alternate which loop goes first, and each
round's ratio pairs blowtorch with the hand-written loop of the same round. What is timed is the
training epochs, on rank 0: from the start of epoch 0 to the end of the last one, each epoch with
a training pass (a DistributedSampler shuffled with ``set_epoch``), a validation pass split across
the ranks with its sums all-reduced, and a checkpoint written by rank 0. Start-up (process group,
sacred) is not in it. The final weights of the two loops are compared too: same seed, same data
order, same updates.

Both loops make the same PyTorch calls; blowtorch adds its bookkeeping, the per-step agreement on
stopping (one small all-reduce), its metrics and its crash-safe checkpoint. torchrun runs this file
as the worker (``--worker``).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Subset, TensorDataset

SEED = 7
BATCH_SIZE = 64  # per process
TRAIN_SAMPLES, VAL_SAMPLES = 8192, 2048


def datasets() -> tuple[TensorDataset, TensorDataset]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(TRAIN_SAMPLES + VAL_SAMPLES, 32, generator=generator)
    y = torch.randn(TRAIN_SAMPLES + VAL_SAMPLES, 10, generator=generator)
    return TensorDataset(x[:TRAIN_SAMPLES], y[:TRAIN_SAMPLES]), TensorDataset(x[TRAIN_SAMPLES:], y[TRAIN_SAMPLES:])


def make_model() -> nn.Module:
    torch.manual_seed(SEED)
    return nn.Sequential(nn.Linear(32, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))


# ---- the two workers (run by torchrun) ----------------------------------------------------------


def hand_written(epochs: int, out: Path) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    train, val = datasets()
    model = make_model()
    ddp = DistributedDataParallel(model)
    optimizer = torch.optim.Adam(ddp.parameters(), lr=1e-3)
    sampler = DistributedSampler(train, shuffle=True, seed=SEED)
    train_loader = DataLoader(train, batch_size=BATCH_SIZE, sampler=sampler)
    val_loader = DataLoader(Subset(val, range(rank, len(val), world)), batch_size=BATCH_SIZE)  # every sample once
    start = time.perf_counter()
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        ddp.train()
        sums = torch.zeros(2)
        for x, y in train_loader:
            loss = nn.functional.mse_loss(ddp(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sums += torch.stack([loss.detach() * len(x), torch.tensor(float(len(x)))])
        ddp.eval()
        with torch.no_grad():
            for x, y in val_loader:
                sums += torch.stack([nn.functional.mse_loss(ddp(x), y) * len(x), torch.tensor(float(len(x)))])
        dist.all_reduce(sums)
        if rank == 0:
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch}, out.parent / "latest.pt")
    seconds = time.perf_counter() - start
    if rank == 0:
        torch.save(model.state_dict(), out.with_suffix(".weights.pt"))
        out.write_text(json.dumps({"seconds": seconds}))
    dist.destroy_process_group()


def with_blowtorch(epochs: int, out: Path) -> None:
    from blowtorch import Run

    run = Run(random_seed=SEED, argv=["ddp-benchmark"], save_git_info=False)
    times: dict[str, float] = {}

    @run.train_step
    @run.validate_step
    def step(batch, model):  # type: ignore[no-untyped-def]
        x, y = batch
        return nn.functional.mse_loss(model(x), y)

    @run.before_epoch
    def started(epoch):  # type: ignore[no-untyped-def]
        if epoch == 0:
            times["start"] = time.perf_counter()

    @run.after_epoch
    def ended(epoch):  # type: ignore[no-untyped-def]
        if epoch == epochs - 1:
            times["end"] = time.perf_counter()

    run.configure_optimizers(lambda model: torch.optim.Adam(model.parameters(), lr=1e-3))
    train, val = datasets()
    model = make_model()
    run(model, DataLoader(train, batch_size=BATCH_SIZE, shuffle=True), DataLoader(val, batch_size=BATCH_SIZE),
        max_epochs=epochs, use_gpu=False, optimize_first=True, save_path=str(out.parent / "train_logs"))  # fmt: skip
    if dist.get_rank() == 0:
        torch.save(model.state_dict(), out.with_suffix(".weights.pt"))
        out.write_text(json.dumps({"seconds": times["end"] - times["start"]}))


# ---- the driver -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def measure(kind: str, nproc: int, epochs: int, directory: Path) -> tuple[float, dict[str, torch.Tensor]]:
    """One fresh torchrun launch; rank 0's seconds for the training epochs, and its final weights."""
    out = directory / f"{kind}.json"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc), "--master-addr", "127.0.0.1",
        "--master-port", str(free_port()), __file__, "--worker", kind, "--epochs", str(epochs), "--out", str(out),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # one core per process: the ranks do not fight over the cores
    result = subprocess.run(command, cwd=directory, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise LaunchError(f"{kind} failed:\n{result.stderr[-3000:]}")
    return json.loads(out.read_text())["seconds"], torch.load(out.with_suffix(".weights.pt"), weights_only=True)


class LaunchError(Exception):
    """A torchrun launch that did not finish: its stderr's end."""


def measure_with_retries(kind: str, nproc: int, epochs: int, say: Callable[[str], None]) -> tuple[float, dict[str, torch.Tensor], int]:
    """:func:`measure` in a fresh directory, launched again (up to twice) if it fails. On this machine
    gloo sometimes aborts a process as it exits ("terminate called without an active exception"), in
    the hand-written loop as in blowtorch's; the failures are counted in the results."""
    for attempt in range(3):
        with tempfile.TemporaryDirectory() as directory:
            try:
                seconds, weights = measure(kind, nproc, epochs, Path(directory))
                return seconds, weights, attempt
            except LaunchError as failure:
                if attempt == 2:
                    raise SystemExit(str(failure)) from None
                first_line = next((line for line in str(failure).splitlines()[1:] if line.strip()), "no output")
                say(f"ddp: {kind} failed ({first_line[:200]}); launching it again")
    raise AssertionError("unreachable")


def measure_ddp(rounds: int, epochs: int, nproc: int, say: Callable[[str], None]) -> dict[str, Any]:
    """The paired rounds: seconds of each loop, the ratio, and whether the final weights are identical."""
    steps = TRAIN_SAMPLES // (BATCH_SIZE * nproc)
    setting = (
        f"{nproc} processes x batch {BATCH_SIZE} (gloo, CPU, 1 thread each), {steps} steps per epoch per process, "
        f"{epochs} epochs, MLP 32-512-512-10, Adam, validation and a checkpoint every epoch"
    )
    say(f"ddp: {setting}")
    records = []
    for round_number in range(rounds):
        order = ["hand-written", "blowtorch"] if round_number % 2 == 0 else ["blowtorch", "hand-written"]
        results = {kind: measure_with_retries(kind, nproc, epochs, say) for kind in order}
        (raw, raw_weights, raw_failed), (ours, our_weights, our_failed) = results["hand-written"], results["blowtorch"]
        identical = all(torch.equal(raw_weights[k], our_weights[k]) for k in raw_weights)
        records.append({
            "round": round_number, "hand_written": raw, "blowtorch": ours, "ratio": ours / raw, "identical": identical,
            "failed_launches": {"hand_written": raw_failed, "blowtorch": our_failed},
        })  # fmt: skip
        say(f"ddp round {round_number + 1}: hand-written {raw:.3f} s, blowtorch {ours:.3f} s, ratio {ours / raw:.3f}")
    return {"setting": setting, "records": records}


def main() -> None:
    parser = argparse.ArgumentParser(description="a worker of the ddp benchmark, started by torchrun")
    parser.add_argument("--worker", choices=["hand-written", "blowtorch"], required=True)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    (hand_written if args.worker == "hand-written" else with_blowtorch)(args.epochs, args.out)


if __name__ == "__main__":
    main()
