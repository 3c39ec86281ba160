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


def run_python(
    script: Path | str, *args: str, cwd: Path, timeout: float = 180, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run a script as a user would, with the interpreter running the tests."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, str(script), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env
    )


def write_script(directory: Path, body: str, name: str = "train.py") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(body))
    return path


def execute_notebook(cells: list[str], directory: Path) -> list[str]:
    """Execute the cells in a fresh Jupyter kernel running this interpreter; return each cell's stdout.

    nbclient starts the kernel locally; a failing cell raises ``CellExecutionError`` with its traceback.
    """
    import nbclient
    import nbformat
    import pytest

    # A kernelspec of our own, so that the kernel is this interpreter (with blowtorch), whatever
    # kernels the machine has installed; the kernel inherits the environment (PYTHONPATH).
    spec = directory / "jupyter" / "kernels" / "blowtorch-test"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "blowtorch test", "language": "python"}))
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(textwrap.dedent(cell)) for cell in cells])
    client = nbclient.NotebookClient(
        notebook, timeout=180, kernel_name="blowtorch-test", resources={"metadata": {"path": str(directory)}}
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", str(directory / "jupyter"))
        client.execute()
    return ["".join(o.get("text", "") for o in cell.outputs if o.get("name") == "stdout") for cell in notebook.cells]


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


def wandb_records(path: Path) -> list:
    """The records of a wandb run file (``run-<id>.wandb``), decoded with wandb's own protobuf classes.

    wandb 0.17+ writes these from its Go core and no longer ships a Python reader; the file is a
    LevelDB-style log: a 7-byte header, then 32 KiB blocks of records (CRC, length, type, data),
    a record longer than a block's rest continuing in the next ones.
    """
    import struct

    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    ident, magic, _version = struct.unpack("<4sHB", data[:7])
    assert ident == b":W&B" and magic == 0xBEE1, f"{path} is not a wandb run file"
    block, header = 32768, 7
    records, pending, position = [], b"", 7
    while position + header <= len(data):
        space = block - position % block
        if space < header:
            position += space
            continue
        _crc, length, kind = struct.unpack("<IHB", data[position : position + header])
        if length == 0 and kind == 0:  # zero padding at the end of a block
            position += space
            continue
        pending += data[position + header : position + header + length]
        position += header + length
        if kind in (1, 4):  # a full record, or the last part of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def wandb_history(path: Path) -> list[dict]:
    rows = []
    for record in wandb_records(path):
        if record.WhichOneof("record_type") == "history":
            rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item})
    return rows


def tensorboard_scalars(directory: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in the event files under ``directory``, read with tensorboard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars: dict[str, list[tuple[int, float]]] = {}
    for events in sorted(directory.rglob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0, "tensors": 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            scalars.setdefault(tag, []).extend((event.step, event.value) for event in accumulator.Scalars(tag))
    return {tag: sorted(values) for tag, values in scalars.items()}
