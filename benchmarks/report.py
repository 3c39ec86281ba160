"""From raw measurements to summaries (medians with min–max over rounds) and a markdown report."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Any

from benchmarks.checkpoints import SIZES
from benchmarks.contestants import BY_NAME, CONTESTANTS, REFERENCE
from benchmarks.imports import FRAMEWORKS, LABELS, MODES


def spread(values: Iterable[float]) -> dict[str, float]:
    items = list(values)
    return {"median": statistics.median(items), "min": min(items), "max": max(items), "n": len(items)}


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """The summary of every part that was measured (added to the results as ``summary``)."""
    summary: dict[str, Any] = {}
    for workload, measured in results.get("training", {}).items():
        summary.setdefault("training", {})[workload] = _summarize_training(measured["records"])
    if "checkpoint" in results:
        summary["checkpoint"] = _summarize_checkpoints(results["checkpoint"]["records"])
    if "imports" in results:
        summary["imports"] = _summarize_imports(results["imports"]["records"])
    if "ddp" in results:
        records = results["ddp"]["records"]
        identical = sum(r["identical"] for r in records)
        failed = {kind: sum(r.get("failed_launches", {}).get(kind, 0) for r in records) for kind in ("hand_written", "blowtorch")}
        ratio = spread(r["ratio"] for r in records)
        summary["ddp"] = {"ratio": ratio, "identical": identical, "n": len(records), "failed_launches": failed}
    return summary


def _summarize_training(records: list[dict[str, Any]]) -> dict[str, Any]:
    by_contestant: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_contestant.setdefault(record["contestant"], []).append(record)
    summary = {}
    for name in [c.name for c in CONTESTANTS if c.name in by_contestant]:
        rows = by_contestant[name]
        summary[name] = {
            key: spread(row[key] for row in rows)
            for key in (
                "ratio", "us_per_step_over_reference", "run_to_first_step_s", "process_to_first_step_s", "process_s",
                "imports_s", "peak_rss_mib", "rss_over_reference_mib",
            )
        }  # fmt: skip
        summary[name]["weights_identical"] = sum(row["weights_identical"] for row in rows)
        summary[name]["largest_weight_difference"] = max(
            (row["weights_difference"] for row in rows if isinstance(row["weights_difference"], float)), default=0.0
        )
        summary[name]["weights_differences"] = sorted({str(r["weights_difference"]) for r in rows if not r["weights_identical"]})
        summary[name]["rounds"] = len(rows)
        summary[name]["train_steps"] = sorted({row["train_steps"] for row in rows})
        summary[name]["val_steps"] = sorted({row["val_steps"] for row in rows})
        summary[name]["same_steps_as_reference"] = all(row["same_steps_as_reference"] for row in rows)
    return summary


def _summarize_checkpoints(records: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for size in [size for size in SIZES if any(record["size"] == size for record in records)]:
        rows = [record for record in records if record["size"] == size]
        durable = {m: [t for row in rows for t in row["durable_s"][m]] for m in rows[0]["durable_s"]}
        pairs = [  # (blowtorch, torch.save, torch.save + fsync) of the same repeat
            triple
            for row in rows
            for triple in zip(*(row["durable_s"][m] for m in ("blowtorch", "torch.save", "torch.save + fsync")), strict=True)
        ]
        summary[size] = {
            "megabytes": rows[0]["bytes"] / 1e6,
            "durable_ms": {method: spread(t * 1e3 for t in times) for method, times in durable.items()},
            "blowtorch_blocked_ms": spread(t * 1e3 for row in rows for t in row["blocked_s"]["blowtorch"]),
            "blowtorch_over_fsync": spread(b / f for b, _, f in pairs),  # paired: the same repeat
            "blowtorch_over_save": spread(b / s for b, s, _ in pairs),
        }
    return summary


def _summarize_imports(records: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {"torch_s": spread(record["torch_s"] for record in records)}
    for record in records:
        summary.setdefault(record["framework"], {}).setdefault(record["mode"], []).append(record["framework_s"])
    for framework, modes in summary.items():
        if framework != "torch_s":
            summary[framework] = {mode: spread(times) for mode, times in modes.items()}
    return summary


# ---- markdown ------------------------------------------------------------------------------


def _value(s: dict[str, float], digits: int, scale: float = 1.0, unit: str = "") -> str:
    median = f"{s['median'] * scale:.{digits}f}{unit}"
    if s["n"] < 2:
        return median
    return f"{median} ({s['min'] * scale:.{digits}f}–{s['max'] * scale:.{digits}f})"


def markdown(results: dict[str, Any]) -> str:
    machine, summary = results["machine"], results["summary"]
    lines = [
        "# What blowtorch costs",
        "",
        f"`{machine['command']}` on {machine['date']}, blowtorch {machine['blowtorch']} (commit {machine['commit']}"
        f"{', with uncommitted changes' if machine['uncommitted_changes'] else ''}).",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB, load average at the start "
        f"{' / '.join(map(str, machine['load_average']))}; {machine['platform']}, Python {machine['python']}, "
        + ", ".join(f"{name} {version}" for name, version in machine["packages"].items())
        + f". Files written to {machine['scratch']} ({machine['scratch_file_system']}).",
        f"Settings: {_settings_text(results['settings'])}.",
    ]
    for workload, per_contestant in summary.get("training", {}).items():
        lines += _training_table(workload, results["training"][workload], per_contestant, results["settings"])
    if "checkpoint" in summary:
        lines += _checkpoint_table(summary["checkpoint"])
    if "imports" in summary:
        lines += _import_table(summary["imports"])
    if "ddp" in summary:
        lines += _ddp_table(results["ddp"]["setting"], summary["ddp"])
    lines += ["", "Figures are medians over the rounds (checkpoint writes: over every write), with the smallest and largest in brackets."]
    return "\n".join(lines) + "\n"


def _settings_text(settings: dict[str, Any]) -> str:
    threads = settings["threads"] or "torch's default"
    text = f"{settings['rounds']} rounds, {settings['epochs']} epochs, precision {settings['precision']}, torch threads {threads}"
    if settings.get("not_installed"):
        text += f"; not installed, so not measured: {', '.join(settings['not_installed'])} (`pip install -e '.[bench]'`)"
    return text


def _training_table(workload: str, measured: dict[str, Any], per_contestant: dict[str, Any], settings: dict[str, Any]) -> list[str]:
    environment = " ".join(f"`{k}={v}`" for k, v in measured["environment"].items())
    lines = [
        "",
        f"## Training: {workload}",
        "",
        f"{measured['description']}; {measured['epochs']} epochs, {measured['train_steps']} training steps; "
        f"validation and a checkpoint every epoch." + (f" Every process runs with {environment}." if environment else ""),
        "",
        "| | ratio to raw + save | µs/step over raw | `Run`/`fit` → 1st step | process start → 1st step | whole process | "
        "peak RSS (over raw) | final weights |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, s in per_contestant.items():
        is_reference = name == REFERENCE.name
        weights = "reference" if is_reference else _weights_text(s)
        if not s["same_steps_as_reference"]:
            weights += f"; {s['train_steps']} training steps!"
        lines.append(
            "| " + " | ".join([
                BY_NAME[name].label,
                "1.00" if is_reference else _value(s["ratio"], 2),
                "—" if is_reference else _value(s["us_per_step_over_reference"], 0),
                _value(s["run_to_first_step_s"], 0, 1e3, " ms"),
                _value(s["process_to_first_step_s"], 2, unit=" s"),
                _value(s["process_s"], 2, unit=" s"),
                f"{s['peak_rss_mib']['median']:.0f} MiB" + ("" if is_reference else f" ({s['rss_over_reference_mib']['median']:+.0f})"),
                weights,
            ]) + " |"
        )  # fmt: skip
    lines += [
        "",
        "Ratio: the timed part (building the optimizer, or `Run(...)`/the `Trainer`, to the end of training) over the raw "
        "loop's with `torch.save`, in the same round. µs/step: the time from the first training step to the end of that part, "
        "minus the raw loop's, per training step (per-step and per-epoch work: validation, logging, checkpoints). "
        "`Run`/`fit` → 1st step: the framework's start-up inside the timed part.",
    ]
    return lines


def _weights_text(s: dict[str, Any]) -> str:
    if s["weights_identical"] == s["rounds"]:
        return "bit-identical"
    text = f"differ (largest \\|Δ\\| {s['largest_weight_difference']:.2g})"
    if s["weights_identical"]:
        text += f", identical in {s['weights_identical']} of {s['rounds']} rounds"
    return text


def _checkpoint_table(summary: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "## Checkpoint writes",
        "",
        "A model's and its Adam state's tensors, written over the previous file as every epoch does; fresh process per "
        "size and round. blowtorch: blocked (the training thread waits) / durable (on disk).",
        "",
        "| size | `torch.save` | `torch.save` + fsync | blowtorch, blocked / durable | blowtorch ÷ save + fsync "
        "| blowtorch ÷ `torch.save` |",
        "|---|---|---|---|---|---|",
    ]
    for size, s in summary.items():
        durable = {method: _value(times, 1, unit=" ms") for method, times in s["durable_ms"].items()}
        cells = [
            f"{size} ({s['megabytes']:.3g} MB written)",
            durable["torch.save"],
            durable["torch.save + fsync"],
            f"{s['blowtorch_blocked_ms']['median']:.1f} / {durable['blowtorch']}",
            _value(s["blowtorch_over_fsync"], 2),
            _value(s["blowtorch_over_save"], 2),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _import_table(summary: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "## Imports",
        "",
        f"`import torch` alone: {_value(summary['torch_s'], 2, unit=' s')}. What each framework's import adds, in fresh "
        "interpreters: right after `import torch` (cold), and after a model, a DataLoader, an Adam step and a `torch.save` "
        "have loaded what torch imports lazily.",
        "",
        "| | cold | after torch's warm-up |",
        "|---|---|---|",
    ]
    for framework, modes in summary.items():
        if framework == "torch_s":
            continue
        label = LABELS.get(framework) or f"`{FRAMEWORKS.get(framework, f'import {framework}')}`"  # what its scripts import
        lines.append(f"| {label} | " + " | ".join(_value(modes[mode], 3, unit=" s") for mode in MODES) + " |")
    return lines


def _ddp_table(setting: str, summary: dict[str, Any]) -> list[str]:
    ratio = summary["ratio"]
    return [
        "",
        f"## DDP: blowtorch under torchrun against a hand-written DDP loop ({setting})",
        "",
        "| | ratio of the training epochs' wall time | final weights |",
        "| --- | --- | --- |",
        f"| blowtorch ÷ hand-written DDP loop | {_value(ratio, 2)} | bit-identical in {summary['identical']} of {summary['n']} rounds |",
        "",
        "Launches that failed and were made again (gloo aborting a process as it exits): hand-written "
        f"{summary['failed_launches']['hand_written']}, blowtorch {summary['failed_launches']['blowtorch']}.",
    ]
