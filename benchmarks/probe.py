"""The measuring side inside a contestant's process: what it trains, when things happened, what it used.

A contestant script reads its job from the JSON file named by ``BENCH_SPEC`` (written by the
harness), calls :meth:`Probe.mark` around its framework's training call, computes every loss
through :meth:`Probe.train_loss` / :meth:`Probe.val_loss` (which count the steps and note the
first one: a counter and a clock read, the same in every contestant) and ends with
:meth:`Probe.finish`. Creating the probe warms torch up (:func:`benchmarks.workloads.warm_up_torch`),
the same in every contestant, before anything is timed. Times are ``CLOCK_MONOTONIC``, the clock the harness reads too, so they line
up with the moment the harness started the process.
"""

from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmarks.workloads import WORKLOADS, loss, warm_up_torch

SPEC_VARIABLE = "BENCH_SPEC"


def now() -> float:
    """Seconds on the system-wide monotonic clock (comparable between processes)."""
    return time.clock_gettime(time.CLOCK_MONOTONIC)


class Probe:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.workload = WORKLOADS[spec["workload"]]
        self.epochs: int = spec["epochs"]
        self.seed: int = spec["seed"]
        self.precision: str = spec["precision"]
        self.options: dict[str, Any] = spec["options"]  # contestant-specific settings (see contestants/)
        self.marks: dict[str, float] = {"imported": now()}
        warm_up_torch()  # torch's lazy imports are torch's cost, not the first optimizer-builder's
        self.mark("warmed_up")
        self.train_steps = 0
        self.val_steps = 0

    @classmethod
    def from_environment(cls) -> Probe:
        path = os.environ.get(SPEC_VARIABLE)
        if not path:
            raise SystemExit(f"{SPEC_VARIABLE} is not set: contestant scripts are started by `python -m benchmarks`")
        return cls(json.loads(Path(path).read_text()))

    def mark(self, name: str) -> None:
        self.marks[name] = now()

    def train_loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        if self.train_steps == 0:
            self.mark("first_step")
        self.train_steps += 1
        return loss(model, batch)

    def val_loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        self.val_steps += 1
        return loss(model, batch)

    def finish(self, model: nn.Module) -> None:
        """Keep the final weights for the comparison with the raw loop, and report."""
        torch.save(model.state_dict(), self.spec["weights"])
        result = {
            "marks": self.marks,
            "train_steps": self.train_steps,
            "val_steps": self.val_steps,
            "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,  # KiB on Linux
            "threads": torch.get_num_threads(),
        }
        Path(self.spec["result"]).write_text(json.dumps(result))
