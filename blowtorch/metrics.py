"""What a step returns, and the per-epoch means of it.

The hot path never reads a value back from the device: step values are kept as tensors where
they were computed, stacked in chunks, and read in one transfer per device at the end of a pass.
"""

from __future__ import annotations

import numbers
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from blowtorch.distributed import Distributed
from blowtorch.errors import NonFiniteLossError, OptionError, UsageError

StepValue = torch.Tensor | float

_CHUNK = 512  # steps whose values are stacked per device kernel; bounds the number of live tiny tensors


def normalize_step_output(output: Any, hook_name: str) -> dict[str, StepValue]:
    """A step's return value as ``{name: scalar tensor or float}``.

    A bare tensor or number means ``{"loss": value}``; a tensor with more than one element is
    reduced with ``.mean()``. Tensors keep their graph: the loop back-propagates one of them.
    """
    if isinstance(output, torch.Tensor) and output.dim() == 0 and output.is_floating_point():
        return {"loss": output}  # what most steps return, as _scalar would return it
    items: Iterable[tuple[Any, Any]]
    if type(output) is dict or isinstance(output, Mapping):  # the type first: the ABC check is slower
        items = output.items()
    elif isinstance(output, (torch.Tensor, numbers.Number)) and not isinstance(output, bool):
        items = (("loss", output),)
    else:
        raise UsageError(
            f"{hook_name} returned {_describe(output)}; return the loss as a tensor, or a dict of "
            f"tensors and numbers such as {{'loss': loss, 'accuracy': accuracy}}"
        )
    normalized: dict[str, StepValue] = {}
    for name, value in items:
        normalized[name] = _scalar(value, name, hook_name)
    if not normalized:
        raise UsageError(f"{hook_name} returned an empty dict; return at least the loss, e.g. {{'loss': loss}}")
    return normalized


def check_metric_name(name: Any, source: str) -> None:
    """Refuse names that a sink would mangle: blowtorch joins phase and name with '.', MongoDB keys
    (Omniboard's metric columns) may not contain '.' or start with '$'."""
    if not isinstance(name, str) or not name.strip():
        raise UsageError(f"{source} returned the metric name {name!r}; metric names must be non-empty strings")
    if "." in name or name.startswith("$") or "\0" in name:
        suggestion = name.replace(".", "_").lstrip("$") or "value"
        raise UsageError(
            f"{source} returned the metric {name!r}; metric names may not contain '.' or start with '$' (blowtorch "
            f"names metrics '<phase>.<name>', and MongoDB and Omniboard cannot store such keys). Use {suggestion!r}"
        )


def _scalar(value: Any, name: str, hook_name: str) -> StepValue:
    if isinstance(value, torch.Tensor):
        if value.dim() == 0 and value.is_floating_point():
            return value
        if value.numel() == 0:
            raise UsageError(f"{hook_name} returned an empty tensor for '{name}'; return a scalar or a non-empty tensor")
        if value.is_complex():
            raise UsageError(f"{hook_name} returned a complex tensor for '{name}'; metrics must be real numbers")
        if not value.is_floating_point():
            value = value.float()
        scalar: torch.Tensor = value if value.dim() == 0 else value.mean() if value.numel() > 1 else value.reshape(())
        return scalar
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    raise UsageError(
        f"{hook_name} returned {_describe(value)} for '{name}'; each value must be a tensor or a number"
    )


def _describe(value: Any) -> str:
    if value is None:
        return "None (did you forget 'return'?)"
    text = repr(value)
    return f"a {type(value).__name__} ({text[:60]}{'...' if len(text) > 60 else ''})"


@dataclass(frozen=True)
class PassResult:
    """The outcome of one pass over a loader: weighted means and where values stopped being finite."""

    means: dict[str, float]
    samples: int
    steps: int
    first_non_finite: dict[str, int]  # metric name -> index of the first step where it was NaN/inf


class PassAccumulator:
    """Collects the values of every step of a pass and computes their batch-size-weighted means.

    A step only appends its row of values (tensors detached, so that no graph is kept alive);
    every ``_CHUNK`` rows, the tensors are stacked into one tensor per device, on the device.
    """

    def __init__(self, hook_name: str) -> None:
        self._hook_name = hook_name
        self._names: tuple[str, ...] | None = None
        self._weights: list[int] = []
        self._rows: list[list[StepValue]] = []  # rows not stacked yet
        # per device: stacked values and where they go: whole rows (a range), or (row, column) pairs
        self._stacked: dict[torch.device, list[tuple[torch.Tensor, range | list[tuple[int, int]]]]] = defaultdict(list)
        self._numbers: list[tuple[int, int, float]] = []
        self._restored = np.zeros((0, 0))  # rows of an earlier, interrupted part of this pass

    @property
    def names(self) -> tuple[str, ...] | None:
        return self._names

    def add(self, values: Mapping[str, StepValue], weight: int) -> None:
        names = tuple(values)
        if names != self._names:
            self._check_names(names)
        self._weights.append(weight)
        row = []
        for value in values.values():
            row.append(value.detach() if isinstance(value, torch.Tensor) else value)
        self._rows.append(row)
        if len(self._rows) >= _CHUNK:
            self._flush()

    def _check_names(self, names: tuple[str, ...]) -> None:
        if self._names is None:
            for name in names:  # once per pass: names are checked when they first appear
                check_metric_name(name, self._hook_name)
            self._names = names
            return
        raise UsageError(
            f"{self._hook_name} returned the metrics {list(names)} at step {len(self._weights)} of this "
            f"pass but {list(self._names)} before; return the same names, in the same order, every step"
        )

    def _flush(self) -> None:
        """Stack the pending rows' tensors on their devices (no transfer); keep their numbers aside."""
        rows, self._rows = self._rows, []
        if not rows:
            return
        first = len(self._weights) - len(rows)
        try:  # the usual rows: tensors only, on one device
            stacked = torch.stack([value for row in rows for value in row])  # type: ignore[misc]
        except (TypeError, RuntimeError):  # numbers among them, or several devices
            pass
        else:
            self._stacked[stacked.device].append((stacked, range(first, first + len(rows))))
            return
        pending: dict[torch.device, list[torch.Tensor]] = defaultdict(list)
        slots: dict[torch.device, list[tuple[int, int]]] = defaultdict(list)
        for row_index, row in enumerate(rows, start=first):
            for column, value in enumerate(row):
                if isinstance(value, torch.Tensor):
                    pending[value.device].append(value)
                    slots[value.device].append((row_index, column))
                else:
                    self._numbers.append((row_index, column, value))
        for device, tensors in pending.items():
            self._stacked[device].append((torch.stack(tensors), slots[device]))

    def snapshot(self) -> dict[str, Any]:
        """The values so far, as tensors (one device read), for a checkpoint inside a pass."""
        return {
            "names": list(self._names or ()),
            "values": torch.from_numpy(self._table()),
            "weights": torch.tensor(self._weights, dtype=torch.int64),
        }

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Continue a pass from :meth:`snapshot`: the means come out as if it had never stopped."""
        self._names = tuple(snapshot["names"]) or None
        self._weights = [int(w) for w in snapshot["weights"].tolist()]
        self._restored = snapshot["values"].numpy().astype(np.float64)

    def _table(self) -> np.ndarray:
        """All values so far as a (steps x metrics) float64 array."""
        names = self._names or ()
        table = np.full((len(self._weights), len(names)), np.nan, dtype=np.float64)
        if self._restored.size:
            table[: self._restored.shape[0]] = self._restored
        self._flush()
        for chunks in self._stacked.values():
            values = torch.cat([stacked for stacked, _ in chunks]).to("cpu", torch.float64).numpy()  # one transfer per device
            start = 0
            for stacked, slots in chunks:
                part, start = values[start : start + stacked.numel()], start + stacked.numel()
                if isinstance(slots, range):
                    table[slots.start : slots.stop] = part.reshape(len(slots), len(names))
                else:
                    rows, columns = zip(*slots, strict=True)
                    table[list(rows), list(columns)] = part
        for row, column, number in self._numbers:
            table[row, column] = number
        return table

    def result(self, across: Distributed | None = None) -> PassResult:
        """Read everything back (one transfer per device) and compute the weighted means.

        ``across`` the ranks of a process group: the sums and counts of every rank's share go into
        the means, so every rank gets the same values (each rank's own ``steps``).
        """
        names = self._names or ()
        table = self._table()
        weights = np.asarray(self._weights, dtype=np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            weighted, total = (table * weights[:, None]).sum(axis=0), weights.sum()
        first = np.array([_first_non_finite(table[:, column]) for column in range(len(names))], dtype=np.float64)
        if across is not None:
            summed = across.sum(torch.from_numpy(np.append(weighted, total))).numpy()
            weighted, total = summed[:-1], summed[-1]
            first = across.min(torch.from_numpy(first)).numpy()
        with np.errstate(invalid="ignore", over="ignore"):
            means = weighted / total if total > 0 else np.full(len(names), np.nan)
        first_non_finite = {name: int(first[column]) for column, name in enumerate(names) if np.isfinite(first[column])}
        return PassResult(
            means={name: float(mean) for name, mean in zip(names, means, strict=True)},
            samples=int(total),
            steps=len(self._weights),
            first_non_finite=first_non_finite,
        )


def _first_non_finite(column: np.ndarray) -> float:
    """The row index of the first NaN or infinite value (inf: none), as a float for an all-reduce with MIN."""
    bad = np.flatnonzero(~np.isfinite(column))
    return float(bad[0]) if bad.size else np.inf


PHASE_LABELS = {"train": "training", "val": "validation"}


def resolve_metric(requested: str | None, metrics: Mapping[str, Mapping[str, float]], option: str) -> str:
    """The qualified name (``val.loss``) of ``requested``.

    A ``train.``/``val.`` prefix picks the phase; a bare name means validation when there is a
    val_loader, else training; ``None`` means the first metric of that default phase.
    """
    default_phase = "val" if "val" in metrics else "train"
    if requested is None:
        return f"{default_phase}.{next(iter(metrics[default_phase]))}"
    prefix, _, rest = requested.partition(".")
    if prefix in metrics and rest in metrics[prefix]:
        return requested
    if requested in metrics[default_phase]:
        return f"{default_phase}.{requested}"
    phase = prefix if prefix in metrics else default_phase
    hint = " (there is no val_loader, so metrics come from training)" if prefix == "val" and "val" not in metrics else ""
    raise OptionError(
        f"{option} '{requested}' is not among the {PHASE_LABELS[phase]} metrics {list(metrics[phase])}{hint}; "
        f"pass one of those, optionally prefixed with 'train.' or 'val.'"
    )


def resolve_optimize_metric(requested: str | None, values: Mapping[str, Any]) -> str:
    if requested is None:
        return next(iter(values))
    name = requested[len("train."):] if requested.startswith("train.") and requested not in values else requested
    if name not in values:
        raise OptionError(
            f"optimize_metric '{requested}' is not among the training metrics {list(values)}; pass one of those"
        )
    return name


def raise_if_loss_not_finite(result: PassResult, name: str | None, epoch: int, start_step: int) -> None:
    """Stop at a NaN or infinite optimized loss, naming the epoch and the first bad global step."""
    if name is not None and name in result.first_non_finite:
        step = start_step + result.first_non_finite[name]
        raise NonFiniteLossError(
            f"the training loss '{name}' became NaN or infinite in epoch {epoch}, first at global step {step} "
            f"(batch {result.first_non_finite[name]} of the epoch); no checkpoint was written for this epoch. "
            f"Lower the learning rate, clip gradients (gradient_clip_val=...), or check the data; detect_anomalies=True shows the "
            f"operation that produced it"
        )


class LossWatch:
    """Reads the optimized loss about once a second: for the progress display, and to stop at a NaN
    within a second instead of at the end of a long epoch. One device sync per read, none per step."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self._next_read = time.monotonic() + interval

    def read(self, loss: StepValue) -> float | None:
        """The loss as a float when a read is due, else None."""
        now = time.monotonic()
        if now < self._next_read:
            return None
        self._next_read = now + self.interval
        return float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
