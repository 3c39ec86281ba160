"""Who trains in the benchmark: a script per framework, and the variants that run it.

Each script is started as its own process, as a user starts a training script, and learns its
workload and settings from the harness through :mod:`benchmarks.probe`.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Contestant:
    name: str  # as given to --contestants
    label: str  # as shown in the table
    script: str  # in this directory
    options: dict[str, Any] = field(default_factory=dict)  # read by the script (Probe.options)
    arguments: tuple[str, ...] = ()  # its command line
    requires: str | None = None  # the module that must be importable (an optional framework)

    @property
    def path(self) -> Path:
        return SCRIPTS / self.script

    def available(self) -> bool:
        return self.requires is None or importlib.util.find_spec(self.requires) is not None


_BARE_LIGHTNING = {"logger": False, "enable_progress_bar": False, "enable_model_summary": False, "num_sanity_val_steps": 0}

CONTESTANTS = [
    Contestant("raw-save", "raw loop + `torch.save` every epoch", "train_raw.py", {"save": True}),
    Contestant("raw", "raw loop, no checkpoint", "train_raw.py", {"save": False}),
    Contestant("blowtorch", "**blowtorch, defaults on**", "train_blowtorch.py", {"run": {}}),
    Contestant("blowtorch-bare", "blowtorch, progress off, `-u`", "train_blowtorch.py", {"run": {"progress": False}}, ("-u",)),
    Contestant("ignite", "PyTorch-Ignite with checkpoints", "train_ignite.py", requires="ignite"),
    Contestant(
        "lightning-bare", "Lightning, bare (checkpoints only)", "train_lightning.py", {"trainer": _BARE_LIGHTNING}, requires="lightning"
    ),
    Contestant("lightning", "Lightning, defaults", "train_lightning.py", {"trainer": {}}, requires="lightning"),
]
BY_NAME = {contestant.name: contestant for contestant in CONTESTANTS}

# Every ratio, µs per step and memory difference is taken against this one, from the same round.
REFERENCE = BY_NAME["raw-save"]


def select(names: list[str] | None) -> tuple[list[Contestant], list[Contestant]]:
    """The chosen contestants (all by default), the reference always first; and those not installed."""
    unknown = sorted(set(names or []) - set(BY_NAME))
    if unknown:
        raise SystemExit(f"unknown contestants {unknown}; choose from {sorted(BY_NAME)}")
    chosen = [c for c in CONTESTANTS if names is None or c.name in names or c is REFERENCE]
    return [c for c in chosen if c.available()], [c for c in chosen if not c.available()]
