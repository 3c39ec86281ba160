"""The benchmark command end to end, in its smoke mode: what it writes, never how fast anything was."""

from __future__ import annotations

import math
import subprocess
import sys

from tests.helpers import REPO, assert_ok, read_json

TIMINGS = (
    "process_s", "imports_s", "process_to_first_step_s", "run_to_first_step_s", "run_s", "first_step_to_end_s",
    "ratio", "us_per_step_over_reference", "peak_rss_mib", "rss_over_reference_mib",
)  # fmt: skip


def test_quick_run_measures_every_part_and_compares_the_weights(tmp_path):
    out = tmp_path / "results"
    command = [sys.executable, "-m", "benchmarks", "--quick", "--contestants", "raw-save", "blowtorch", "--out", str(out)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=1200)
    assert_ok(result)
    results = read_json(out / "results.json")

    assert results["settings"]["rounds"] == 1 and results["settings"]["epochs"] == 2
    assert results["machine"]["blowtorch"] and results["machine"]["packages"]["torch"]
    training = results["training"]
    assert list(training) == ["tiny"]  # --quick: the tiny workload only
    records = training["tiny"]["records"]
    assert sorted(r["contestant"] for r in records) == ["blowtorch", "raw-save"]
    for record in records:
        assert record["train_steps"] == 2 * 128 and record["val_steps"] == 2 * 32, record
        for key in TIMINGS:
            assert isinstance(record[key], float) and math.isfinite(record[key]), (key, record)
        # the process used torch's threads as asked (OMP_NUM_THREADS=1, the default)
        assert record["threads"] == 1
        log = (out / "logs" / "tiny" / f"round0-{record['contestant']}.log").read_text(errors="replace")
        assert "epoch 1" in log
    blowtorch_log = (out / "logs" / "tiny" / "round0-blowtorch.log").read_text(errors="replace")
    assert "Completed after" in blowtorch_log  # a real sacred run, recorded and completed
    assert "0/128 [" in blowtorch_log  # the progress display took the terminal's path: a tqdm bar

    summary = results["summary"]["training"]["tiny"]
    assert summary["raw-save"]["ratio"]["median"] == 1.0  # the reference, paired with itself
    assert summary["blowtorch"]["rounds"] == 1
    # blowtorch adds bookkeeping only: the same steps on the same data end in the same bits
    assert summary["blowtorch"]["weights_identical"] == 1, summary["blowtorch"]["weights_differences"]

    checkpoint = results["summary"]["checkpoint"]
    assert list(checkpoint) == ["0.04MB"]
    assert 0.02 < checkpoint["0.04MB"]["megabytes"] < 0.08  # the tiny model with its Adam state
    assert set(checkpoint["0.04MB"]["durable_ms"]) == {"torch.save", "torch.save + fsync", "blowtorch"}
    imports = results["summary"]["imports"]
    assert set(imports) == {"torch_s", "blowtorch", "blowtorch-sacred"}  # no Lightning or Ignite contestant chosen
    assert set(imports["blowtorch"]) == {"cold", "after torch's warm-up"}

    ddp = results["ddp"]["records"]
    assert len(ddp) == 1 and ddp[0]["ratio"] == ddp[0]["blowtorch"] / ddp[0]["hand_written"]
    assert ddp[0]["identical"] is True  # blowtorch under torchrun makes the hand-written DDP loop's updates

    report = (out / "results.md").read_text()
    for heading in ("## Training: tiny", "## Checkpoint writes", "## Imports", "## DDP: blowtorch under torchrun"):
        assert heading in report
    assert "| `from blowtorch import Run`, then sacred as `Run(...)` imports it | " in report  # what a script imports by its first step
    blowtorch_row = next(line for line in report.splitlines() if line.startswith("| **blowtorch, defaults on**"))
    assert blowtorch_row.endswith("| bit-identical |")
    assert report in result.stdout
    # the report can be rendered again from the raw numbers
    rerender = [sys.executable, "-m", "benchmarks", "--report", str(out / "results.json")]
    again = subprocess.run(rerender, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert_ok(again)
    assert again.stdout == report
