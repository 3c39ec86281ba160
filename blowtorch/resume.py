"""Finding the checkpoint to resume from, and saying how its config differs from the current one."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from blowtorch.checkpoint import load_checkpoint
from blowtorch.checkpoint_files import CheckpointStore
from blowtorch.errors import CheckpointError, MissingFileError
from blowtorch.rundir import CHECKPOINTS


@dataclass(frozen=True)
class ResumePoint:
    """A loaded checkpoint and the run directory the resumed run continues in (None: a new one)."""

    path: Path
    checkpoint: dict[str, Any]
    run_dir: Path | None

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.checkpoint["config"])

    @property
    def description(self) -> str:
        position = self.checkpoint.get("position")
        where = f"inside epoch {self.checkpoint['epoch']}" if position else f"after epoch {self.checkpoint['epoch']}"
        return f"{self.path} ({where}, global step {self.checkpoint['state']['global_step']})"


def find_resume_point(path: str | Path) -> ResumePoint:
    """``path`` is a run directory (its newest intact checkpoint) or a checkpoint file."""
    path = Path(path).expanduser()
    if not path.exists():
        raise MissingFileError(
            f"resume path '{path}' does not exist; pass a run directory (e.g. train_logs/<run>) or a checkpoint "
            f"file (e.g. train_logs/<run>/checkpoints/latest.pt)"
        )
    if path.is_file():
        run_dir = path.parent.parent if path.parent.name == CHECKPOINTS else None
        return ResumePoint(path, load_checkpoint(path), run_dir)
    directory = path / CHECKPOINTS if (path / CHECKPOINTS).is_dir() else path
    candidates = CheckpointStore(directory).newest_first()
    if not candidates:
        raise CheckpointError(
            f"resume path '{path}' holds no checkpoints (no *.pt in {directory}); pass a run directory that "
            f"has a checkpoints/ folder, or a checkpoint file"
        )
    problems: list[str] = []
    for candidate in candidates:
        try:
            checkpoint = load_checkpoint(candidate)
        except CheckpointError as error:
            problems.append(str(error))
            continue
        if problems:
            warnings.warn(
                f"could not use {candidates[0].name}: {problems[0]}. Resuming from the newest intact checkpoint "
                f"instead: {candidate}",
                RuntimeWarning,
                stacklevel=2,
            )
        run_dir = directory.parent if directory.name == CHECKPOINTS else None
        return ResumePoint(candidate, checkpoint, run_dir)
    raise CheckpointError(f"no intact checkpoint in {directory}: " + "; ".join(problems))


def config_differences(before: Mapping[str, Any], after: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Every difference between two nested configs, as ``key: old -> new`` lines."""
    lines: list[str] = []
    for key in sorted(set(before) | set(after)):
        dotted = f"{prefix}{key}"
        if key not in after:
            lines.append(f"{dotted}: {before[key]!r} -> (removed)")
        elif key not in before:
            lines.append(f"{dotted}: (new) -> {after[key]!r}")
        elif isinstance(before[key], Mapping) and isinstance(after[key], Mapping):
            lines.extend(config_differences(before[key], after[key], f"{dotted}."))
        elif before[key] != after[key]:
            lines.append(f"{dotted}: {before[key]!r} -> {after[key]!r}")
    return lines
