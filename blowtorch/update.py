"""How gradients become an optimizer update: loss scaling, accumulation and clipping, and what
they report once per epoch.

The values they report (the gradient norm before clipping, float16's skipped steps) stay on the
device as running sums, so an update adds a few tiny kernels and no host-device sync; the sums
are read with the epoch's other values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

GRADIENT_CLIP_ALGORITHMS = ("norm", "value")


@dataclass(frozen=True)
class UpdateRule:
    """The options that shape an update, as ``run(...)`` was given them."""

    scaler: torch.amp.GradScaler | None = None  # precision="16"
    accumulate_grad_batches: int = 1
    gradient_clip_val: float | None = None
    gradient_clip_algorithm: str = "norm"

    @property
    def measures_norm(self) -> bool:
        return self.gradient_clip_val is not None and self.gradient_clip_algorithm == "norm"


class UpdateStatistics:
    """Per-epoch sums on the device: gradient norms per optimizer, non-finite norms, skipped steps."""

    _KEYS = ("norm_sum", "norm_count", "non_finite", "skipped")

    def __init__(self, optimizer_names: list[str]) -> None:
        self.optimizer_names = optimizer_names
        self._sums: dict[str, dict[str, torch.Tensor]] = {}
        self.steps = 0

    def reset(self) -> None:
        self._sums, self.steps = {}, 0

    def add_norm(self, optimizer: str, norm: torch.Tensor) -> None:
        finite = torch.isfinite(norm)
        sums = self._for(optimizer, norm.device)
        sums["norm_sum"] += torch.where(finite, norm, 0.0)
        sums["norm_count"] += finite
        sums["non_finite"] += ~finite

    def add_skipped(self, found_inf: torch.Tensor) -> None:
        self._for("", found_inf.device)["skipped"] += found_inf

    def _for(self, optimizer: str, device: torch.device) -> dict[str, torch.Tensor]:
        if optimizer not in self._sums:
            self._sums[optimizer] = {key: torch.zeros((), dtype=torch.float64, device=device) for key in self._KEYS}
        return self._sums[optimizer]

    def read(self) -> dict[str, float]:
        """``grad_norm`` (``grad_norm_<optimizer>`` with several), ``non_finite_norms`` and ``skipped_steps``."""
        values: dict[str, float] = {}
        for optimizer, sums in self._sums.items():
            host = {key: float(value) for key, value in sums.items()}
            if optimizer == "":
                values["skipped_steps"] = host["skipped"]
                continue
            name = "grad_norm" if len(self.optimizer_names) == 1 else f"grad_norm_{optimizer}"
            values[name] = host["norm_sum"] / host["norm_count"] if host["norm_count"] else float("nan")
            values["non_finite_norms"] = values.get("non_finite_norms", 0.0) + host["non_finite"]
        return values

    def snapshot(self) -> dict[str, Any]:
        """The sums so far, for a checkpoint inside an epoch."""
        return {"steps": self.steps, "sums": {o: {k: v.detach().cpu() for k, v in s.items()} for o, s in self._sums.items()}}

    def restore(self, snapshot: dict[str, Any], device: torch.device) -> None:
        self.steps = int(snapshot["steps"])
        self._sums = {o: {k: v.to(device) for k, v in s.items()} for o, s in snapshot["sums"].items()}


def clip_gradients(parameters: list[torch.Tensor], rule: UpdateRule) -> torch.Tensor | None:
    """Clip in place; by norm, return the total norm before clipping (on the device)."""
    assert rule.gradient_clip_val is not None
    if rule.gradient_clip_algorithm == "value":
        torch.nn.utils.clip_grad_value_(parameters, rule.gradient_clip_val)
        return None
    return torch.nn.utils.clip_grad_norm_(parameters, rule.gradient_clip_val)
