"""The training benchmark: every contestant on one workload, in rounds, each run a fresh process.

Within a round each contestant runs once, in an order rotated from round to round; its figures
are then paired with the reference (the raw loop with ``torch.save``) of the same round, so that
a slow minute on a shared machine weighs on both sides of a ratio. Its final weights are compared
with the reference's, tensor by tensor.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from benchmarks.contestants import REFERENCE, Contestant
from benchmarks.environment import child_environment
from benchmarks.harness import check_finished, rotated, run_process
from benchmarks.probe import SPEC_VARIABLE
from benchmarks.workloads import Workload


def measure_workload(
    workload: Workload,
    contestants: list[Contestant],
    *,
    rounds: int,
    epochs: int,
    precision: str,
    threads: int,
    seed: int,
    out: Path,
    scratch: Path,
    timeout: float,
    say: Callable[[str], None],
) -> dict[str, Any]:
    records: list[dict[str, Any]] = []
    for round_index in range(rounds):
        in_round = {}
        for position, contestant in enumerate(rotated(contestants, round_index)):
            directory = scratch / f"{workload.name}-{round_index}-{contestant.name}"
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir(parents=True)
            spec = {
                "workload": workload.name, "epochs": epochs, "seed": seed, "precision": precision,
                "options": contestant.options, "result": str(directory / "result.json"), "weights": str(directory / "weights.pt"),
            }  # fmt: skip
            (directory / "spec.json").write_text(json.dumps(spec))
            log = out / "logs" / workload.name / f"round{round_index}-{contestant.name}.log"
            environment = child_environment(threads, {**workload.environment, SPEC_VARIABLE: str(directory / "spec.json")})
            argv = [sys.executable, str(contestant.path), *contestant.arguments]
            finished = run_process(argv, cwd=directory, environment=environment, log=log, terminal=True, timeout=timeout)
            check_finished(finished, f"{contestant.name} on {workload.name}")
            result = json.loads((directory / "result.json").read_text())
            record = _timings(result, finished.started, finished.exited)
            record.update(round=round_index, position=position, contestant=contestant.name, log=str(log))
            in_round[contestant.name] = record
            say(
                f"{workload.name} round {round_index + 1}/{rounds} {contestant.name:15} run(...) {record['run_s']:7.2f} s, "
                f"process {record['process_s']:6.2f} s, peak RSS {record['peak_rss_mib']:6.0f} MiB"
            )
        _pair_with_reference(in_round, scratch, workload.name, round_index)
        records.extend(in_round.values())
        for contestant in contestants:
            shutil.rmtree(scratch / f"{workload.name}-{round_index}-{contestant.name}", ignore_errors=True)
    return {
        "description": workload.description,
        "epochs": epochs,
        "train_steps": epochs * workload.train_batches,
        "environment": workload.environment,
        "records": records,
    }


def _timings(result: dict[str, Any], started: float, exited: float) -> dict[str, Any]:
    """Seconds between the points a run passes, from the process's start to its exit."""
    marks = result["marks"]
    return {
        "process_s": exited - started,
        "imports_s": marks["imported"] - started,  # interpreter, torch, the framework, the script's imports
        "process_to_first_step_s": marks["first_step"] - started,
        "run_to_first_step_s": marks["first_step"] - marks["fit_start"],  # the framework's start-up inside run(...)
        "run_s": marks["fit_end"] - marks["fit_start"],  # run(...) / fit(...) / the loop, whole
        "first_step_to_end_s": marks["fit_end"] - marks["first_step"],
        "train_steps": result["train_steps"],
        "val_steps": result["val_steps"],
        "peak_rss_mib": result["peak_rss_kib"] / 1024,
        "threads": result["threads"],
    }


def _pair_with_reference(in_round: dict[str, dict[str, Any]], scratch: Path, workload: str, round_index: int) -> None:
    reference = in_round[REFERENCE.name]
    expected = _load_weights(scratch / f"{workload}-{round_index}-{REFERENCE.name}")
    for name, record in in_round.items():
        record["ratio"] = record["run_s"] / reference["run_s"]
        record["us_per_step_over_reference"] = (
            (record["first_step_to_end_s"] - reference["first_step_to_end_s"]) / record["train_steps"] * 1e6
        )
        record["rss_over_reference_mib"] = record["peak_rss_mib"] - reference["peak_rss_mib"]
        record["same_steps_as_reference"] = record["train_steps"] == reference["train_steps"]
        record.update(_compare(expected, _load_weights(scratch / f"{workload}-{round_index}-{name}")))


def _load_weights(directory: Path) -> dict[str, torch.Tensor]:
    return torch.load(directory / "weights.pt", map_location="cpu", weights_only=True)


def _compare(expected: dict[str, torch.Tensor], actual: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Bit-identical (same names, shapes, dtypes and every bit), else how far apart."""
    if expected.keys() != actual.keys():
        return {"weights_identical": False, "weights_difference": f"other parameters: {sorted(set(expected) ^ set(actual))}"}
    identical, largest = True, 0.0
    for key, tensor in expected.items():
        other = actual[key]
        if tensor.shape != other.shape or tensor.dtype != other.dtype:
            return {"weights_identical": False, "weights_difference": f"{key}: {other.dtype}{list(other.shape)}"}
        if not torch.equal(tensor, other):
            identical = False
            largest = max(largest, (tensor.double() - other.double()).abs().max().item())
    return {"weights_identical": identical, "weights_difference": largest}
