"""Seeding, and capturing / restoring every random number generator a training run draws from.

States are stored as tensors and plain Python values only, so a checkpoint holding them loads with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from blowtorch.errors import CheckpointError


def seed_everything(seed: int) -> None:
    """Seed python's ``random``, numpy's global generator and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def capture_rng_state(generators: Mapping[str, torch.Generator] | None = None) -> dict[str, Any]:
    """The state of every global random number generator, plus ``generators`` (e.g. a DataLoader's own)."""
    version, internal, gauss = random.getstate()
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generators": {label: generator.get_state() for label, generator in (generators or {}).items()},
    }
    return state


def restore_rng_state(state: dict[str, Any], generators: Mapping[str, torch.Generator] | None = None) -> None:
    """Put every random number generator back into ``state`` (from :func:`capture_rng_state`).

    ``generators`` must hold the same labels as when the state was captured.
    """
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["kind"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["position"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    cuda_states = state["cuda"]
    if cuda_states and torch.cuda.is_available():
        if len(cuda_states) != torch.cuda.device_count():
            raise CheckpointError(
                f"the checkpoint holds random states for {len(cuda_states)} CUDA devices, this machine has "
                f"{torch.cuda.device_count()}; resume on a machine with as many visible devices (CUDA_VISIBLE_DEVICES)"
            )
        torch.cuda.set_rng_state_all(cuda_states)
    saved = state.get("generators", {})
    current = dict(generators or {})
    if set(saved) != set(current):
        raise CheckpointError(
            f"the checkpoint holds the states of the generators {sorted(saved)}, the data loaders now have "
            f"{sorted(current)}; give the loaders the same generator= arguments as the run that wrote it"
        )
    for label, generator_state in saved.items():
        current[label].set_state(generator_state)


def loader_generators(loader: Any, label: str) -> dict[str, torch.Generator]:
    """The ``torch.Generator`` objects a DataLoader draws its order from, if it has its own."""
    found: dict[str, torch.Generator] = {}
    for path in ("generator", "sampler.generator", "batch_sampler.sampler.generator"):
        obj = loader
        for attribute in path.split("."):
            obj = getattr(obj, attribute, None)
        if isinstance(obj, torch.Generator) and all(obj is not g for g in found.values()):
            found[f"{label}.{path}"] = obj
    return found
