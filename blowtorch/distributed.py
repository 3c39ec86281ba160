"""Training under torchrun: detecting it, joining its process group, and the few collectives blowtorch needs.

blowtorch launches nothing: ``torchrun`` (or ``srun torchrun``) starts the processes and sets
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous variables; ``Run()`` then joins the
process group with ``torch.distributed`` as it is. Rank 0 owns the sacred run, the run directory
and the loggers; every rank trains, and the values the loop decides on (seed, config, epoch
metrics) are made equal on every rank by the collectives here.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import math
import os
import socket
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from blowtorch.errors import OptionError

#: What torchrun sets in every process it starts.
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class Distributed:
    """This process's place in the process group."""

    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value``, on every rank."""
        holder = [value]
        dist.broadcast_object_list(holder, src=0)
        return holder[0]

    def gather(self, value: Any) -> list[Any] | None:
        """Every rank's ``value``, in rank order, on rank 0 (None elsewhere)."""
        gathered: list[Any] | None = [None] * self.world_size if self.is_main else None
        dist.gather_object(value, gathered, dst=0)
        return gathered

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """The element-wise sum over all ranks of a CPU tensor."""
        return _all_reduce(values, dist.ReduceOp.SUM)

    def min(self, values: torch.Tensor) -> torch.Tensor:
        """The element-wise minimum over all ranks of a CPU tensor."""
        return _all_reduce(values, dist.ReduceOp.MIN)

    def max(self, value: int) -> int:
        """The largest of every rank's ``value`` (one small CPU collective)."""
        return int(_all_reduce(torch.tensor([value], dtype=torch.int64), dist.ReduceOp.MAX).item())

    def describe(self) -> dict[str, Any]:
        """For the run's sacred ``info`` (a collective: every rank calls it): size, backend and hosts."""
        hosts = self.gather(socket.gethostname())
        return {"world_size": self.world_size, "backend": str(dist.get_backend()), "hosts": sorted(set(hosts or []))}

    def rank_seed(self, seed: int) -> int:
        """A seed for this rank's own random streams (dropout, augmentation): rank 0 keeps ``seed``."""
        if self.rank == 0:
            return seed
        digest = hashlib.sha256(f"{seed}:{self.rank}".encode()).digest()
        return int.from_bytes(digest[:4], "little")


def _all_reduce(values: torch.Tensor, op: Any) -> torch.Tensor:
    reduced = values.clone()  # all_reduce works in place; the caller's tensor stays as it was
    dist.all_reduce(reduced, op=op)
    return reduced


def report_failure(run_dir: Path, rank: int) -> None:
    """A rank other than 0 failed: leave its traceback where rank 0 records the run (a shared file system)."""
    with contextlib.suppress(OSError):  # reporting must not hide the error itself
        (run_dir / f".rank-{rank}-failure.txt").write_text(traceback.format_exc(), encoding="utf-8")


def failure_of_another_rank(run_dir: Path, wait: float = 3.0) -> tuple[int, str] | None:
    """The first traceback another rank left (waiting briefly: its process may still be writing); the file is removed."""
    deadline = time.monotonic() + wait
    while True:
        reports = sorted(run_dir.glob(".rank-*-failure.txt"))
        if reports or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    if not reports:
        return None
    rank = int(reports[0].name.split("-")[1])
    trace = reports[0].read_text(encoding="utf-8")
    for report in reports:
        report.unlink(missing_ok=True)
    return rank, trace


def is_broken_collective(error: BaseException) -> bool:
    """Whether ``error`` says a collective lost its peers: what a rank sees when another one dies
    without a Python error (SIGKILL, out of memory, a lost node), or after the timeout."""
    if isinstance(error, dist.DistError):
        return True
    message = str(error)
    return isinstance(error, RuntimeError) and any(mark in message for mark in ("gloo", "NCCL", "Connection reset", "Connection closed"))


def under_torchrun() -> bool:
    return all(name in os.environ for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))


def join_process_group(backend: str | None, timeout: float) -> Distributed | None:
    """Join torchrun's process group (None when this process was not started by torchrun)."""
    if not under_torchrun():
        return None
    local_rank = int(os.environ["LOCAL_RANK"])
    if torch.cuda.is_available() and local_rank < torch.cuda.device_count():
        # Before the group exists: NCCL's collectives (and DDP) use the current device, which is
        # otherwise cuda:0 in every process of a node.
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend=process_group_backend(backend), timeout=dt.timedelta(seconds=timeout))
    return Distributed(dist.get_rank(), dist.get_world_size(), local_rank)


def default_backend() -> str:
    """gloo for CPU tensors; NCCL for CUDA tensors where there are GPUs."""
    if torch.cuda.is_available() and dist.is_nccl_available():
        return "cpu:gloo,cuda:nccl"
    return "gloo"


def process_group_backend(backend: str | None) -> str:
    """The backend string for ``init_process_group``. blowtorch's own collectives (the stop agreement,
    the metrics) are on small CPU tensors, so a CUDA-only backend gets gloo for the CPU beside it."""
    if backend is None:
        return default_backend()
    if backend == "nccl":
        return "cpu:gloo,cuda:nccl"
    return backend


def check_ddp_options(backend: Any, timeout: Any) -> None:
    """``Run(ddp_backend=..., ddp_timeout=...)``, checked also where there is no torchrun (a typo shows at once)."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < math.inf:
        raise OptionError(f"ddp_timeout must be a positive number of seconds (default 1800), got {timeout!r}")
    if backend is None:
        return
    known = [name for name in dist.Backend.backend_list if name not in ("undefined", "fake")]
    names = [part.split(":")[-1] for part in backend.split(",")] if isinstance(backend, str) and backend else [None]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise OptionError(
            f"ddp_backend must be a torch.distributed backend ({', '.join(known)}) or a list such as "
            f"'cpu:gloo,cuda:nccl', got {backend!r}"
        )
