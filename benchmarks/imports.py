"""The import benchmark: what ``import blowtorch`` (and each other framework) costs on top of ``import torch``.

Each measurement is a fresh interpreter that imports torch, then the framework, and reports both
times. "cold" imports the framework right after torch; "after torch's warm-up" first does what
every training script does anyway (:func:`benchmarks.workloads.warm_up_torch`: a model, a
DataLoader, an Adam step, a ``torch.save``), which loads the modules torch imports lazily on first
use (``torch._dynamo`` with the first optimizer, among others), so only what the framework itself
brings is left. Files are in the page cache
either way: "cold" means the first import in the process, not a cold disk.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.environment import child_environment
from benchmarks.harness import check_finished, rotated, run_process

# framework -> what its contestant script imports
FRAMEWORKS = {
    "blowtorch": "from blowtorch import Run",
    # sacred is imported by Run(...), not by `import blowtorch`: this is what a script has imported by the first step
    "blowtorch-sacred": "from blowtorch import Run; import blowtorch.sacred_bridge.experiment",
    "lightning": "import lightning",
    "ignite": "import ignite.engine, ignite.handlers, ignite.metrics",
}

# how the table names an import that is not a single statement a user writes
LABELS = {"blowtorch-sacred": "`from blowtorch import Run`, then sacred as `Run(...)` imports it"}

WARM_UP = "from benchmarks.workloads import warm_up_torch; warm_up_torch()"

PROGRAM = """
import json, sys, time
clock = lambda: time.clock_gettime(time.CLOCK_MONOTONIC)
started = clock()
import torch
torch_done = clock()
{warm_up}
framework_started = clock()
{framework}
done = clock()
with open(sys.argv[1], "w") as out:
    json.dump({{"torch_s": torch_done - started, "framework_s": done - framework_started}}, out)
"""

MODES = {"cold": "", "after torch's warm-up": WARM_UP}


def measure_imports(
    frameworks: list[str], *, rounds: int, threads: int, out: Path, scratch: Path, timeout: float, say: Callable[[str], None]
) -> dict[str, Any]:
    cases = [(framework, mode) for framework in frameworks for mode in MODES]
    records = []
    scratch.mkdir(parents=True, exist_ok=True)
    for round_index in range(rounds):
        for framework, mode in rotated(cases, round_index):
            result_path = scratch / "import.json"
            program = PROGRAM.format(warm_up=MODES[mode], framework=FRAMEWORKS[framework])
            log = out / "logs" / "import" / f"round{round_index}-{framework}-{mode.split()[0]}.log"
            finished = run_process(
                [sys.executable, "-c", program, str(result_path)], cwd=scratch, environment=child_environment(threads), log=log,
                terminal=False, timeout=timeout,
            )  # fmt: skip
            check_finished(finished, f"import {framework} ({mode})")
            result = json.loads(result_path.read_text())
            result_path.unlink()
            records.append({"round": round_index, "framework": framework, "mode": mode, **result})
            say(
                f"import round {round_index + 1}/{rounds} {framework} ({mode}): "
                f"{result['framework_s']:.3f} s over torch's {result['torch_s']:.2f} s"
            )
    return {"records": records}
