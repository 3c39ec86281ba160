"""What blowtorch's crash-safe checkpoint writes cost next to a plain ``torch.save``, in the same process.

    python benchmarks/checkpoint.py [--megabytes 200] [--repeats 3]

blowtorch writes a temp file, computes its CRC-32 while streaming, fsyncs it, renames it, fsyncs
the directory and records the checksum in manifest.json (twice, so no crash window can make an
intact file look corrupt). The plain save is ``torch.save(payload, path)`` with no fsync: what a
hand-written loop usually does, and not crash-safe. The ratio is the price of safety.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from blowtorch.checkpoint_files import CheckpointStore


def payload(megabytes: int) -> dict:
    floats = megabytes * 2**20 // 4
    return {
        "format": "blowtorch-checkpoint",
        "epoch": 0,
        "state": {"global_step": 0},
        "position": None,
        "model": {f"layer{i}.weight": torch.randn(floats // 8) for i in range(8)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    data = payload(args.megabytes)
    ratios = []
    with tempfile.TemporaryDirectory() as directory:
        store = CheckpointStore(Path(directory) / "checkpoints")
        for _ in range(args.repeats):  # interleaved, so machine noise hits both alike
            start = time.perf_counter()
            torch.save(data, Path(directory) / "plain.pt")
            plain = time.perf_counter() - start
            start = time.perf_counter()
            store.save(data, epoch_end=True, is_best=True)
            ours = time.perf_counter() - start
            ratios.append(ours / plain)
            print(f"torch.save {plain:.2f}s  blowtorch {ours:.2f}s  ratio {ours / plain:.2f}")
    print(f"median ratio blowtorch / plain torch.save: {statistics.median(ratios):.2f} for {args.megabytes} MB")


if __name__ == "__main__":
    main()
