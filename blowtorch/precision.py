"""Mixed precision: the autocast the steps run in, and the loss scaler of float16 training.

``"32"`` trains in float32. ``"bf16"`` runs the training and validation steps under autocast to
bfloat16: its range is float32's, so no loss scaling is needed. ``"16"`` autocasts to float16
and scales the loss with ``torch.amp.GradScaler``, which skips an optimizer step whose gradients
overflowed and lowers the scale. The backward pass and the optimizer step run outside autocast,
as torch recommends; the model's weights stay float32 throughout.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch

from blowtorch.errors import OptionError

# Every accepted spelling, and the precision it means. Lightning's spellings are accepted so that
# a script moved from it keeps working; "32"/"bf16"/"16" are the names blowtorch uses itself.
SPELLINGS: dict[Any, str] = {
    "32": "32", 32: "32", "32-true": "32",
    "bf16": "bf16", "bf16-mixed": "bf16",
    "16": "16", 16: "16", "16-mixed": "16",
}  # fmt: skip
_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "16": torch.float16}


@dataclass(frozen=True)
class Precision:
    """One of ``"32"``, ``"bf16"`` and ``"16"``."""

    name: str

    @classmethod
    def parse(cls, value: Any) -> Precision:
        if isinstance(value, bool) or not isinstance(value, (str, int)) or value not in SPELLINGS:
            accepted = ", ".join(repr(spelling) for spelling in SPELLINGS)
            raise OptionError(
                f"precision must be one of {accepted} ('32': float32, 'bf16': autocast to bfloat16, '16': autocast to "
                f"float16 with loss scaling), got {value!r}"
            )
        return cls(SPELLINGS[value])

    @property
    def autocasts(self) -> bool:
        """Whether the steps run under autocast (every precision but ``"32"``)."""
        return self.name != "32"

    @property
    def scales_loss(self) -> bool:
        return self.name == "16"

    def check_device(self, device: torch.device) -> None:
        """Raise for a precision this device (or this torch build) cannot train in."""
        if self.name == "32":
            return
        if device.type not in ("cuda", "cpu"):
            raise OptionError(f"precision={self.name!r} is supported on CUDA and the CPU, not on {device.type}; use precision='32'")
        if device.type == "cuda" and self.name == "bf16" and not torch.cuda.is_bf16_supported():
            raise OptionError(
                f"precision='bf16' needs a GPU with bfloat16 support (Ampere or newer); {torch.cuda.get_device_name(device)} has "
                f"none. Use precision='16' (float16 with loss scaling) or '32'"
            )

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        """The context the steps run in: one object per pass, entered once per step."""
        if self.name == "32":
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=_AUTOCAST_DTYPES[self.name])

    def scaler(self, device: torch.device) -> torch.amp.GradScaler | None:
        return torch.amp.GradScaler(device.type) if self.scales_loss else None
