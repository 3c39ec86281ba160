"""The checkpoint benchmark: blowtorch's crash-safe write against ``torch.save``, with and without fsync.

All three write the same payload (a model's and its Adam state's, the bulk of a real checkpoint)
to the same directory, replacing the previous file as a training run does every epoch:

- ``torch.save``: what a hand-written loop usually does; not durable (the data may still be in
  the page cache when the machine goes down) and not atomic;
- ``torch.save`` + fsync of the file: the least a durable write costs, the target's yardstick;
- blowtorch: temp file, checksum, fsync, rename, directory fsync, manifest, ``best.pt``; all but
  the temp file's writing in a background thread, as in training.

Each round is a fresh process per size; inside it, every method writes once to warm up, then
``repeats`` times in an order rotated each time. For blowtorch, "blocked" is how long the
training thread waits and "durable" until the files are on disk and in place.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.environment import child_environment
from benchmarks.harness import check_finished, rotated, run_process

# name -> the MLP whose model and Adam state make up the payload
SIZES = {
    "0.04MB": (32, 64, 10),  # the tiny workload's checkpoint
    "25MB": (32, 1024, 1024, 1024, 10),  # the medium workload's
    "200MB": (32, 2880, 2880, 2880, 10),
}
METHODS = ("torch.save", "torch.save + fsync", "blowtorch")


class BlowtorchCheckpoints:
    """The one place that calls blowtorch's checkpoint writing, as the training loop does
    (``CheckpointWriter`` in blowtorch/checkpoint_writer.py: after every epoch ``CheckpointStore.write`` in the
    training thread, then ``PendingSave.finish`` in a background thread; here an epoch that is the
    best so far, so ``best.pt`` is written too). Adapt this class when that API changes."""

    def __init__(self, directory: Path) -> None:
        from blowtorch.checkpoint_files import CheckpointStore
        from blowtorch.checkpoint_thread import BackgroundFinish

        self.store = CheckpointStore(directory)
        self.finishing = BackgroundFinish()

    def save(self, payload: dict[str, Any]) -> None:
        """Returns when the training loop would continue."""
        self.finishing.wait()
        self.finishing.start(self.store.write(payload, epoch_end=True, is_best=True).finish)

    def wait(self) -> None:
        """Returns when everything written is durable and in place."""
        self.finishing.wait()


def measure_checkpoints(
    sizes: list[str], *, rounds: int, repeats: int, threads: int, out: Path, scratch: Path, timeout: float, say: Callable[[str], None]
) -> dict[str, Any]:
    records = []
    for round_index in range(rounds):
        for size in rotated(sizes, round_index):
            directory = scratch / f"checkpoint-{round_index}"
            directory.mkdir(parents=True, exist_ok=True)
            log = out / "logs" / "checkpoint" / f"round{round_index}-{size}.log"
            argv = [sys.executable, "-m", "benchmarks.checkpoints", size, str(repeats), str(round_index), str(directory)]
            finished = run_process(argv, cwd=directory, environment=child_environment(threads), log=log, terminal=False, timeout=timeout)
            check_finished(finished, f"the checkpoint benchmark at {size}")
            result = json.loads((directory / "result.json").read_text())
            records.append({"round": round_index, "size": size, **result})
            medians = {method: sorted(times)[len(times) // 2] * 1e3 for method, times in result["durable_s"].items()}
            say(f"checkpoint round {round_index + 1}/{rounds} {size:>6}: " + ", ".join(f"{m} {t:.1f} ms" for m, t in medians.items()))
            shutil.rmtree(directory)
    return {"sizes": {size: SIZES[size] for size in sizes}, "repeats": repeats, "records": records}


def _payload(widths: tuple[int, ...]) -> dict[str, Any]:
    import torch

    from benchmarks.workloads import mlp

    torch.manual_seed(0)
    model = mlp(widths)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.randn(4, widths[0])).sum().backward()
    optimizer.step()  # Adam's state exists after the first step: two more tensors per parameter
    # The keys blowtorch's store reads for its manifest, then the bulk of a real checkpoint.
    return {"epoch": 0, "state": {"global_step": 1}, "position": None, "model": model.state_dict(), "optimizer": optimizer.state_dict()}


def _worker(size: str, repeats: int, round_index: int, directory: Path) -> None:
    import torch

    payload = _payload(SIZES[size])

    def plain(path: Path) -> None:
        torch.save(payload, path)

    def with_fsync(path: Path) -> None:
        torch.save(payload, path)  # a path: torch's own C++ file writer, its fastest way
        descriptor = os.open(path, os.O_RDONLY)  # fsync flushes the file, whichever descriptor asks
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    blowtorch = BlowtorchCheckpoints(directory / "checkpoints")
    write: dict[str, Callable[[], None]] = {
        "torch.save": lambda: plain(directory / "plain.pt"),
        "torch.save + fsync": lambda: with_fsync(directory / "synced.pt"),
        "blowtorch": lambda: blowtorch.save(payload),
    }
    blocked: dict[str, list[float]] = {method: [] for method in METHODS}
    durable: dict[str, list[float]] = {method: [] for method in METHODS}
    for repeat in range(-1, repeats):  # -1: the warm-up, not recorded
        for method in rotated(METHODS, round_index + repeat):
            start = time.perf_counter()
            write[method]()
            returned = time.perf_counter()
            if method == "blowtorch":
                blowtorch.wait()
            done = time.perf_counter()
            if repeat >= 0:
                blocked[method].append(returned - start)
                durable[method].append(done - start)
    result = {"bytes": (directory / "plain.pt").stat().st_size, "blocked_s": blocked, "durable_s": durable}
    (directory / "result.json").write_text(json.dumps(result))


if __name__ == "__main__":
    _worker(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]))
