"""The two training workloads every contestant runs: the same model, data, order and optimizer.

Everything that decides the final weights is fixed here, so a contestant that adds only bookkeeping
ends with weights bit-identical to the raw loop's:

- the model is built right after ``torch.manual_seed(seed)``, so every contestant starts from the
  same initial weights whatever its framework seeded before;
- the data is generated from its own ``torch.Generator``, and the training order is drawn from the
  sampler's own generator (:class:`EpochPermutation`), never from the global random state that
  frameworks seed, save and restore (validation is not shuffled);
- no dropout or batch norm: nothing else in training draws random numbers.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn
from torch.utils.data import DataLoader, Sampler, TensorDataset


@dataclass(frozen=True)
class Workload:
    """An MLP classifier trained with Adam on generated data, with validation every epoch."""

    name: str
    widths: tuple[int, ...]  # input features, hidden widths, classes
    train_batches: int  # per epoch
    val_batches: int
    batch_size: int = 64
    learning_rate: float = 1e-3
    # Environment variables set for every contestant's process (see MEDIUM).
    environment: dict[str, str] = field(default_factory=dict)

    @property
    def description(self) -> str:
        layers = "-".join(str(width) for width in self.widths)
        return (
            f"MLP {layers}, batch {self.batch_size}, Adam, {self.train_batches} training and "
            f"{self.val_batches} validation batches per epoch"
        )

    def model(self, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return mlp(self.widths)

    def loaders(self, seed: int) -> tuple[DataLoader, DataLoader]:
        """A training loader shuffled by its own sampler, and a validation loader in a fixed order."""
        generator = torch.Generator().manual_seed(seed + 1)
        features, classes = self.widths[0], self.widths[-1]
        teacher = torch.randn(features, classes, generator=generator)

        def dataset(batches: int) -> TensorDataset:
            x = torch.randn(batches * self.batch_size, features, generator=generator)
            return TensorDataset(x, (x @ teacher).argmax(dim=1))

        train_set, val_set = dataset(self.train_batches), dataset(self.val_batches)
        order = EpochPermutation(len(train_set), torch.Generator().manual_seed(seed + 2))
        return DataLoader(train_set, batch_size=self.batch_size, sampler=order), DataLoader(val_set, batch_size=self.batch_size)

    def optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.Adam(model.parameters(), lr=self.learning_rate)


class EpochPermutation(Sampler[int]):
    """A new random order every epoch, drawn from its own generator when the epoch's first batch is read.

    Not ``shuffle=True``: torch's ``RandomSampler`` draws one more permutation (and uses none of
    it) when an epoch's iterator is exhausted, which a loop that stops after ``len(loader)``
    batches (Lightning's) never does, so later epochs would see other orders in different
    frameworks. The generator is an attribute called ``generator`` so that frameworks which save a
    sampler's random state (blowtorch) find it.
    """

    def __init__(self, size: int, generator: torch.Generator) -> None:
        self.size = size
        self.generator = generator

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        return iter(torch.randperm(self.size, generator=self.generator).tolist())


def mlp(widths: tuple[int, ...]) -> nn.Module:
    layers: list[nn.Module] = []
    for index, (inputs, outputs) in enumerate(itertools.pairwise(widths)):
        layers.append(nn.Linear(inputs, outputs))
        if index < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """The loss every contestant optimizes and validates with: one scalar per batch."""
    x, y = batch
    return F.cross_entropy(model(x), y)


def autocast(precision: str) -> contextlib.AbstractContextManager[None]:
    """The hand-written mixed-precision context for loops without a precision option of their own."""
    if precision == "32":
        return contextlib.nullcontext()
    return torch.autocast("cpu", dtype=torch.bfloat16)


def warm_up_torch() -> None:
    """Load what torch imports lazily on first use and every training script pays once, whatever
    its framework: ``torch._dynamo`` with the first optimizer (about a second), the DataLoader's
    machinery, autograd's, serialization's. Done before any timed part (and before the framework
    import in the import benchmark's second mode), so that a framework's start-up is its own, not
    torch's bill landing on whoever builds the first optimizer inside its timed part."""
    import io

    model = mlp((4, 8, 2))
    optimizer = torch.optim.Adam(model.parameters())
    for batch in DataLoader(TensorDataset(torch.randn(8, 4), torch.tensor([0, 1] * 4)), batch_size=4):
        optimizer.zero_grad()
        loss(model, batch).backward()
        optimizer.step()
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, io.BytesIO())


TINY = Workload("tiny", (32, 64, 10), train_batches=128, val_batches=32)

# Why the medium workload sets glibc's malloc thresholds, for every contestant alike: by default
# glibc serves allocations of 128 KiB and more with a fresh mmap, and raises that threshold
# (up to 32 MiB) to the size of the first such block that is freed. The medium model's per-step
# tensors (a 1024x1024 gradient, Adam's temporaries: 4 MiB each) then come from mmap, page-fault
# on first touch and go back to the kernel every step until some larger block happens to be freed,
# so whichever contestant allocates and frees a big buffer first (a checkpoint, a state-dict copy)
# trains faster afterwards. Setting either variable switches the dynamic threshold off:
# - MALLOC_MMAP_THRESHOLD_ = 16 MiB: above every per-step tensor (4 MiB), so steps reuse heap
#   memory; checkpoint-sized buffers still get their own mapping;
# - MALLOC_TRIM_THRESHOLD_ = 256 MiB: more than a step frees at once, so the top of the heap is not
#   handed back to the kernel after every step only to be faulted in again by the next one.
MEDIUM = Workload(
    "medium",
    (32, 1024, 1024, 1024, 10),
    train_batches=32,
    val_batches=8,
    environment={"MALLOC_MMAP_THRESHOLD_": str(16 << 20), "MALLOC_TRIM_THRESHOLD_": str(256 << 20)},
)

WORKLOADS = {workload.name: workload for workload in (TINY, MEDIUM)}
