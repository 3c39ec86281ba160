"""How much blowtorch's loop adds to a hand-written PyTorch loop, measured in the same process.

    python benchmarks/overhead.py [--steps 20000] [--repeats 3] [--precision bf16]

Both loops train the same small MLP on the same in-memory batches for the same number of optimizer
steps. The raw loop keeps its epoch loss on the device too (no per-step `.item()`), so the ratio
is blowtorch's bookkeeping, not a sync the raw loop would also pay. The blowtorch time includes
sacred's start and the run directory's files; it is amortised over the steps. Small models make the
ratio look worse than on real workloads: the per-step overhead is constant, the model's cost is not.
With ``--precision bf16`` the raw loop is the hand-written autocast loop (steps under
``torch.autocast(dtype=torch.bfloat16)``, backward and step outside) and blowtorch runs with
``precision="bf16"``. GPU figures are still to be measured.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings

import torch
from torch import nn

from blowtorch import Run


def make_batches(steps_per_epoch: int, batch_size: int = 64, features: int = 32) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    return [
        (torch.randn(batch_size, features, generator=generator), torch.randn(batch_size, 1, generator=generator))
        for _ in range(steps_per_epoch)
    ]


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(32, 128), nn.ReLU(), nn.Linear(128, 1))


def raw_loop(batches, epochs: int, precision: str) -> float:
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
    start = time.perf_counter()
    for _ in range(epochs):
        total = torch.zeros(())
        for x, y in batches:
            with autocast:
                loss = ((model(x) - y) ** 2).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * x.shape[0]
        float(total)  # one read per epoch, like blowtorch
    return time.perf_counter() - start


def blowtorch_loop(batches, epochs: int, save_path: str, precision: str) -> float:
    run = Run(name="benchmark", argv=["benchmark", "-u"], random_seed=0, save_git_info=False)

    @run.train_step
    def step(batch, model):
        x, y = batch
        return ((model(x) - y) ** 2).mean()

    @run.configure_optimizers
    def configure(model):
        return torch.optim.SGD(model.parameters(), lr=1e-3)

    model = make_model()
    start = time.perf_counter()
    run(model, batches, max_epochs=epochs, optimize_first=True, use_gpu=False, progress=False, save_path=save_path, precision=precision)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000, help="optimizer steps per measurement")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precision", choices=["32", "bf16"], default="32")
    args = parser.parse_args()
    torch.set_num_threads(1)  # steadier timings on shared machines
    batches = make_batches(args.steps // args.epochs)
    ratios = []
    with tempfile.TemporaryDirectory() as save_path, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(args.repeats):  # interleaved, so machine noise hits both loops alike
            raw = raw_loop(batches, args.epochs, args.precision)
            ours = blowtorch_loop(batches, args.epochs, save_path, args.precision)
            ratios.append(ours / raw)
            print(f"raw {raw:.2f}s  blowtorch {ours:.2f}s  ratio {ours / raw:.3f}")
    print(
        f"precision {args.precision}: median ratio blowtorch / raw loop {statistics.median(ratios):.3f} "
        f"(min {min(ratios):.3f}, max {max(ratios):.3f}) over {args.steps} steps"
    )


if __name__ == "__main__":
    main()
