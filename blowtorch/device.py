"""Everything that knows about devices: choosing one, and moving batches onto it.

All device handling lives here so that the loop stays device-agnostic and the GPU path can be
tested on a CPU-only machine through the same functions.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from blowtorch.distributed import Distributed
from blowtorch.errors import OptionError


def select_device(use_gpu: bool, gpu_id: int, distributed: Distributed | None = None) -> torch.device:
    """The device a run trains on.

    ``use_gpu=True`` without CUDA falls back to the CPU with one INFO line, so a script written for a
    GPU machine still runs on a laptop. A ``gpu_id`` that does not exist is an error.
    """
    if isinstance(gpu_id, bool) or not isinstance(gpu_id, int) or gpu_id < 0:
        raise OptionError(f"gpu_id must be a non-negative int (a CUDA device index), got {gpu_id!r}")
    if not use_gpu:
        return torch.device("cpu")
    if distributed is not None and torch.cuda.is_available():  # torchrun: one GPU per process, by local rank
        if gpu_id != 0 and distributed.is_main:
            logging.getLogger("blowtorch").info(f"under torchrun each process trains on cuda:LOCAL_RANK; gpu_id={gpu_id} is not used")
        count = torch.cuda.device_count()
        if distributed.local_rank >= count:
            raise OptionError(
                f"this process has LOCAL_RANK {distributed.local_rank}, but this machine has {count} CUDA device(s): "
                f"each process trains on its own GPU. Start at most {count} processes per node (torchrun "
                f"--nproc-per-node {count}), or pass use_gpu=False to train on the CPU"
            )
        return torch.device("cuda", distributed.local_rank)
    if not torch.cuda.is_available():
        # The default is use_gpu=True, so this is every run on a laptop: worth a line, not a warning.
        logging.getLogger("blowtorch").info("CUDA is not available on this machine: training on the CPU (use_gpu=False says so)")
        return torch.device("cpu")
    count = torch.cuda.device_count()
    if gpu_id >= count:
        names = ", ".join(f"{i} ({torch.cuda.get_device_name(i)})" for i in range(count))
        raise OptionError(
            f"gpu_id={gpu_id} does not exist; the CUDA devices on this machine are: {names}. "
            f"Pass one of those indices as gpu_id"
        )
    return torch.device("cuda", gpu_id)


def move_to_device(data: Any, device: torch.device) -> Any:
    """Move every tensor inside ``data`` (nested dicts, lists, tuples, dataclasses) to ``device``.

    Copies from pinned memory are asynchronous (``non_blocking``), so a DataLoader with
    ``pin_memory=True`` overlaps the copy with compute. Objects with a ``.to`` method are moved too.
    Containers are rebuilt (a step may change its batch without changing the loader's data).
    """
    if isinstance(data, torch.Tensor):
        return data if data.device == device else data.to(device, non_blocking=data.is_pinned())
    kind = type(data)
    if kind is list or kind is tuple:  # what a DataLoader yields: checked by type, before the slower ABC checks below
        for value in data:
            if not (isinstance(value, torch.Tensor) and value.device == device):
                moved = [move_to_device(value, device) for value in data]
                return moved if kind is list else tuple(moved)
        return list(data) if kind is list else data  # tensors already on the device: nothing to walk
    if kind is dict:
        return {key: move_to_device(value, device) for key, value in data.items()}
    if isinstance(data, Mapping):
        return type(data)({key: move_to_device(value, device) for key, value in data.items()})  # type: ignore[call-arg]
    if isinstance(data, tuple) and hasattr(data, "_fields"):  # namedtuple
        return type(data)(*(move_to_device(value, device) for value in data))
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        moved = [move_to_device(value, device) for value in data]
        return moved if isinstance(data, list) else type(data)(moved)  # type: ignore[call-arg]
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        changes = {f.name: move_to_device(getattr(data, f.name), device) for f in dataclasses.fields(data) if f.init}
        return dataclasses.replace(data, **changes)
    if hasattr(data, "to") and callable(data.to):
        return data.to(device)
    return data


def batch_size_of(batch: Any) -> int:
    """The number of samples in ``batch``: the first dimension of the first tensor found in it.

    Used to weight per-epoch metric means, so a smaller last batch counts for what it holds. A
    batch without tensors counts as one sample. Reads only shapes, never values (no device sync).
    """
    kind = type(batch)
    if (kind is list or kind is tuple) and batch and isinstance(batch[0], torch.Tensor):  # a DataLoader's (x, y)
        tensor: torch.Tensor | None = batch[0]
    else:
        tensor = _first_tensor(batch)
    return int(tensor.shape[0]) if tensor is not None and tensor.dim() > 0 else 1


def _first_tensor(data: Any) -> torch.Tensor | None:
    if isinstance(data, torch.Tensor):
        return data
    if isinstance(data, Mapping):
        children: Any = data.values()
    elif isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        children = data
    elif dataclasses.is_dataclass(data) and not isinstance(data, type):
        children = [getattr(data, f.name) for f in dataclasses.fields(data)]
    else:
        return None
    for child in children:
        found = _first_tensor(child)
        if found is not None:
            return found
    return None
