"""Small models, data and script runners for the tests. Data is generated, never downloaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, TensorDataset

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


def regression_loaders(samples: int = 64, batch_size: int = 16, features: int = 4, shuffle: bool = True):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(samples, features, generator=generator)
    y = x.sum(dim=1, keepdim=True)
    dataset = TensorDataset(x, y)
    return (
        DataLoader(dataset, batch_size=batch_size, shuffle=shuffle),
        DataLoader(TensorDataset(x[: samples // 2], y[: samples // 2]), batch_size=batch_size),
    )


def linear_model(features: int = 4) -> torch.nn.Module:
    return torch.nn.Linear(features, 1)


def run_python(script: Path | str, *args: str, cwd: Path, timeout: float = 180, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run a script as a user would, with the interpreter running the tests."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, str(script), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env
    )


def write_script(directory: Path, body: str, name: str = "train.py") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(body))
    return path


def only_run_dir(save_path: Path) -> Path:
    run_dirs = [p for p in save_path.iterdir() if p.is_dir() and p.name != "sacred"]
    assert len(run_dirs) == 1, f"expected one run directory in {save_path}, found {sorted(p.name for p in run_dirs)}"
    return run_dirs[0]


def sacred_run_dirs(base: Path) -> list[Path]:
    return sorted((p for p in base.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def assert_ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, f"exit code {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
