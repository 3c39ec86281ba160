"""Each rank's share of the data under torchrun.

A training ``DataLoader`` with a plain sampler is re-created with a ``DistributedSampler`` (its
``shuffle`` and ``drop_last`` kept, seeded from the run's seed); the loop calls ``set_epoch`` every
epoch. A validation ``DataLoader`` is split into every rank's share *without padding*, so each sample
is evaluated exactly once and the reduced means equal a single process's. A loader that already
has a ``DistributedSampler`` is left alone; any other custom sampler is an error, since blowtorch
cannot know how to split it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, Sampler, SequentialSampler

from blowtorch.distributed import Distributed
from blowtorch.errors import OptionError
from blowtorch.user_warnings import warn

# The DataLoader arguments a re-created loader keeps (its sampler and batch_sampler are replaced).
_KEPT = (
    "batch_size", "num_workers", "collate_fn", "pin_memory", "drop_last", "timeout", "worker_init_fn",
    "multiprocessing_context", "generator", "prefetch_factor", "persistent_workers", "pin_memory_device",
)  # fmt: skip


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + world_size, ...``: every sample once across ranks, shares differ by at most one."""

    def __init__(self, length: int, distributed: Distributed) -> None:
        self.indices = range(distributed.rank, length, distributed.world_size)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def shard_loader(loader: Iterable[Any] | None, label: str, distributed: Distributed, seed: int) -> Iterable[Any] | None:
    """``loader`` with this rank's share of its samples (``label``: train_loader or val_loader)."""
    if loader is None or distributed.world_size == 1:
        return loader
    if not isinstance(loader, DataLoader):
        warn(f"{label} is not a DataLoader, so every rank iterates all of it; give each rank its own share (or use a DataLoader)")
        return loader
    if not hasattr(loader.dataset, "__len__") or loader.batch_sampler is None:
        warn(f"{label} has an iterable dataset: shard it in the dataset itself (each rank must read its own part)")
        return loader
    sampler = loader.sampler
    if isinstance(sampler, DistributedSampler):
        return loader
    if not isinstance(sampler, (RandomSampler, SequentialSampler)):
        raise OptionError(
            f"{label} uses the custom sampler {type(sampler).__name__}, which blowtorch cannot split across "
            f"{distributed.world_size} processes; give the loader a torch.utils.data.DistributedSampler yourself"
        )
    shuffle = isinstance(sampler, RandomSampler)
    if label == "train_loader":
        new_sampler: Sampler[int] = DistributedSampler(
            loader.dataset, num_replicas=distributed.world_size, rank=distributed.rank, shuffle=shuffle, seed=seed,
            drop_last=loader.drop_last,
        )  # fmt: skip
    else:
        new_sampler = ShardSampler(len(loader.dataset), distributed)
    kept = {name: getattr(loader, name) for name in _KEPT if hasattr(loader, name)}
    if kept.get("num_workers", 0) == 0:
        kept.pop("prefetch_factor", None)  # DataLoader refuses it without workers
        kept["persistent_workers"] = False
    return DataLoader(loader.dataset, sampler=new_sampler, **kept)
