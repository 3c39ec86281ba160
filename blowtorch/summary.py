"""Human-readable descriptions of a run's model and code (model-summary.txt, source.txt)."""

from __future__ import annotations

import inspect
import os
import sys
import sysconfig
from collections.abc import Callable, Iterable
from typing import Any

import torch


def model_summary(model: torch.nn.Module) -> str:
    """A table of every module with its own parameter counts, the totals, and the model's repr."""
    rows = [("name", "type", "parameters", "trainable", "shapes")]
    for name, module in model.named_modules():
        own = list(module.named_parameters(recurse=False))
        if not own and list(module.children()):
            continue  # containers without parameters of their own add only noise
        count = sum(p.numel() for _, p in own)
        trainable = sum(p.numel() for _, p in own if p.requires_grad)
        shapes = ", ".join(f"{pname}{tuple(p.shape)}" for pname, p in own)
        rows.append((name or "(model)", type(module).__name__, f"{count:,}", f"{trainable:,}", shapes))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for index, row in enumerate(rows):
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1]), row[2].rjust(widths[2]), row[3].rjust(widths[3]), row[4]]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("-" * len(lines[0]))
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    size += sum(b.numel() * b.element_size() for b in model.buffers())
    lines += [
        "",
        f"Total parameters:         {total:,}",
        f"Trainable parameters:     {trainable:,}",
        f"Non-trainable parameters: {total - trainable:,}",
        f"Parameter + buffer size:  {size / 2**20:.2f} MiB",
        "",
        repr(model),
        "",
    ]
    return "\n".join(lines)


def source_listing(model: torch.nn.Module, functions: Iterable[Callable[..., Any]]) -> str:
    """The source of the model's class and of every decorated function.

    A model class from an installed package (``nn.Sequential``, a torchvision model) is named with
    its package version instead: its source is the package's, and model-summary.txt shows the structure.
    """
    model_class = type(model)
    title = f"model class {model_class.__module__}.{model_class.__qualname__}"
    if _is_installed_package(model_class):
        top = model_class.__module__.split(".")[0]
        version = getattr(sys.modules.get(top), "__version__", "unknown version")
        sections = [f"# === {title} ===\n# defined by the installed package '{top}' ({version}); see model-summary.txt\n"]
    else:
        sections = [_section(title, model_class)]
    for function in functions:
        sections.append(_section(f"function {function.__module__}.{function.__qualname__}", function))
    return "\n".join(sections)


def _is_installed_package(obj: Any) -> bool:
    try:
        filename = os.path.realpath(inspect.getsourcefile(obj) or "")
    except TypeError:
        return False
    roots = {os.path.realpath(p) for key in ("purelib", "platlib") if (p := sysconfig.get_paths().get(key))}
    return any(filename.startswith(root + os.sep) for root in roots)


def _section(title: str, obj: Any) -> str:
    try:
        where = f"{inspect.getsourcefile(obj)}:{inspect.getsourcelines(obj)[1]}"
        source = inspect.getsource(obj)
    except (OSError, TypeError) as error:
        where, source = "unknown", f"# source not available: {error}\n"
    return f"# === {title} ({where}) ===\n{source}"
