"""``python -m benchmarks``: measure what blowtorch costs, write results.json and results.md."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

from benchmarks.checkpoints import SIZES, measure_checkpoints
from benchmarks.contestants import BY_NAME, select
from benchmarks.ddp import measure_ddp
from benchmarks.environment import compile_checkout, describe_machine
from benchmarks.imports import measure_imports
from benchmarks.report import markdown, summarize
from benchmarks.training import measure_workload
from benchmarks.workloads import WORKLOADS

PARTS = ("training", "checkpoint", "imports", "ddp")
# Full run / --quick (a smoke run: the tiny workload once, two epochs, the smallest checkpoint).
DEFAULTS = {
    "workloads": (list(WORKLOADS), ["tiny"]),
    "rounds": (5, 1),
    "epochs": (10, 2),
    "checkpoint_sizes": (list(SIZES), ["0.04MB"]),
    "checkpoint_repeats": (5, 2),
    "ddp_epochs": (5, 1),
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--quick", action="store_true", help="a smoke run: tiny workload, 1 round, 2 epochs, smallest checkpoint")
    p.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="what to measure (default: all)")
    p.add_argument("--workloads", nargs="+", choices=list(WORKLOADS), help="default: tiny medium")
    p.add_argument("--contestants", nargs="+", choices=list(BY_NAME), help="default: all installed (raw-save is always in)")
    p.add_argument("--rounds", type=int, help="rounds of every measurement (default 5)")
    p.add_argument("--epochs", type=int, help="training epochs (default 10)")
    p.add_argument("--precision", choices=["32", "bf16"], default="32", help="every contestant trains in it")
    p.add_argument("--threads", type=int, default=1, help="torch threads of every process (OMP_NUM_THREADS); 0: torch's default")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-sizes", nargs="+", choices=list(SIZES), help="default: all")
    p.add_argument("--checkpoint-repeats", type=int, help="writes per method, size and round (default 5)")
    p.add_argument("--out", type=Path, default=Path("benchmark-results"), help="results.json, results.md and logs/ (default: %(default)s)")
    p.add_argument("--scratch", type=Path, help="where the runs write (default: OUT/scratch); put it on the disk you train on")
    p.add_argument("--ddp-epochs", type=int, help="epochs of the ddp part (default 5)")
    p.add_argument("--timeout", type=float, default=1800, help="seconds one measured process may take")
    p.add_argument("--report", type=Path, metavar="RESULTS_JSON", help="only print the markdown of an earlier results.json")
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if args.report is not None:
        print(markdown(json.loads(args.report.read_text())), end="")
        return
    for name, (full, quick) in DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    if args.rounds < 1 or args.epochs < 1 or args.checkpoint_repeats < 1:
        raise SystemExit("--rounds, --epochs and --checkpoint-repeats must be at least 1")
    contestants, missing = select(args.contestants)
    if missing:
        _say(f"not installed, so not measured: {', '.join(c.name for c in missing)} (pip install -e '.[bench]')")
    out: Path = args.out.absolute()
    scratch: Path = (args.scratch or out / "scratch").absolute()
    shutil.rmtree(out / "logs", ignore_errors=True)
    scratch.mkdir(parents=True, exist_ok=True)
    compile_checkout()
    results: dict[str, Any] = {
        "machine": describe_machine(scratch),
        "settings": {
            "rounds": args.rounds, "epochs": args.epochs, "precision": args.precision, "threads": args.threads, "seed": args.seed,
            "contestants": [c.name for c in contestants], "not_installed": [c.name for c in missing],
        },
    }  # fmt: skip
    common = {"rounds": args.rounds, "threads": args.threads, "out": out, "scratch": scratch, "timeout": args.timeout, "say": _say}
    if "training" in args.parts:
        results["training"] = {}
        for name in args.workloads:
            results["training"][name] = measure_workload(
                WORKLOADS[name], contestants, epochs=args.epochs, precision=args.precision, seed=args.seed, **common
            )
            _keep(results, out)
    if "checkpoint" in args.parts:
        results["checkpoint"] = measure_checkpoints(args.checkpoint_sizes, repeats=args.checkpoint_repeats, **common)
        _keep(results, out)
    if "imports" in args.parts:
        # blowtorch always (the subject); the others when one of their contestants is measured
        others = [f for f in ("lightning", "ignite") if any(c.name.startswith(f) for c in contestants)]
        frameworks = ["blowtorch", "blowtorch-sacred", *others]
        results["imports"] = measure_imports(frameworks, **common)
        _keep(results, out)
    if "ddp" in args.parts:
        results["ddp"] = measure_ddp(args.rounds, args.ddp_epochs, nproc=2, say=_say)
    _keep(results, out)
    report = markdown(results)
    (out / "results.md").write_text(report)
    print(f"\n{report}\nwritten: {out / 'results.json'}, {out / 'results.md'}; each process's output in {out / 'logs'}")


def _keep(results: dict[str, Any], out: Path) -> None:
    """The parts measured so far and their summary, in results.json: written after each part, so
    that a part that fails later does not lose the others (``--report`` prints their tables)."""
    results["summary"] = summarize(results)
    (out / "results.json").write_text(json.dumps(results, indent=1))


def _say(line: str) -> None:
    print(line, flush=True)
