"""Speed of plan search (issue 18: ``simwall plan`` <= 3 s and ``simwall check`` <= 2 s
for GPT-3 175B on 1,536 A100s) and the best plan of Megatron-LM's 145.6B row.

Each command runs in a fresh process, as a user runs it: wall seconds, CPU seconds (user
+ system of the child) and plans per second (valid plans enumerated / wall). The cases:

- GPT-3 175B (workloads/gpt3-175b.yaml, 1,536 A100s: 19,632 valid plans);
- Megatron-LM's 145.6B row (Narayanan et al. 2021, SC21, Table 1: 80 layers, h 12288,
  96 heads, vocabulary 51200, sequence 2048, global batch 2304) on 1,536 A100s
  (examples/megatron-145b.yaml, dgx-a100, 192 nodes: 15,000 valid plans).

"before" is either measured in the same run on another checkout (``--before DIR``, e.g.
the main checkout; the outputs of both are compared byte for byte) or, by default, the
figures recorded below. Then it searches the 145.6B row in process and compares its best
plan with the paper's TP 8 x PP 8 (full recompute, 1F1B, micro-batch 1) in simwall's
model. Prints figures; asserts nothing.

    /work/venv/bin/python benchmarks/bench_search.py [--before /work/main] [--quick]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKLOAD = str(ROOT / "examples" / "megatron-145b.yaml")
OVERRIDES = {"cluster.nodes": 192}

#: (name, simwall arguments, target wall seconds or None).
CASES = (
    ("plan gpt3-175b", ["plan", "gpt3-175b"], 3.0),
    ("check gpt3-175b", ["check", "gpt3-175b"], 2.0),
    ("plan 145.6B", ["plan", "examples/megatron-145b.yaml", "--set", "cluster.nodes=192"],
     None),
    ("check 145.6B", ["check", "examples/megatron-145b.yaml", "--set", "cluster.nodes=192"],
     None),
)

#: Recorded "before": main at commit 2445d6d (before issue 18's search changes), each
#: command once in a fresh process on the shared 2-core machine (``--before /work/main``,
#: load average 2.7-3.5 from other jobs, so wall exceeds CPU): (wall s, CPU s).
RECORDED_BEFORE = {
    "plan gpt3-175b": (22.97, 15.96),
    "check gpt3-175b": (27.00, 17.44),
    "plan 145.6B": (16.75, 11.10),
    "check 145.6B": (27.72, 20.02),
}


def run(root: Path, args: list[str]) -> tuple[float, float, str]:
    """(wall s, CPU s, stdout) of ``simwall ARGS --quiet`` run from checkout ``root``."""
    env = dict(os.environ, PYTHONPATH=str(root))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "simwall", *args, "--quiet"], cwd=root,
                         env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, out.stdout


def valid_plans(stdout: str) -> int | None:
    """The valid-plan count ``simwall plan`` / ``check`` print."""
    found = re.search(r"(\d+) valid", stdout)
    return int(found.group(1)) if found else None


def speed_table(before_root: Path | None) -> None:
    print(f"{'case':<18} {'before wall':>11} {'before CPU':>10} {'now wall':>9} "
          f"{'now CPU':>8} {'CPU x':>6} {'plans/s':>8}  target")
    for name, args, target in CASES:
        wall, cpu, out = run(ROOT, args)
        same = ""
        if before_root is not None:
            b_wall, b_cpu, b_out = run(before_root, args)
            same = "  outputs identical" if b_out == out else "  OUTPUTS DIFFER"
        else:
            b_wall, b_cpu = RECORDED_BEFORE[name]
        n = valid_plans(out)
        rate = f"{n / wall:>8.0f}" if n else f"{'-':>8}"
        goal = f"wall <= {target:.0f} s: {'met' if wall <= target else 'not met'}" \
            if target else ""
        print(f"{name:<18} {b_wall:>10.2f}s {b_cpu:>9.2f}s {wall:>8.2f}s {cpu:>7.2f}s "
              f"{b_cpu / cpu:>6.1f} {rate}  {goal}{same}")


def paper_comparison() -> None:
    sys.path.insert(0, str(ROOT))     # this checkout's simwall, not an installed one
    from simwall.api import simulate
    from simwall.studies.search import render_search, search

    t0 = time.perf_counter()
    res = search(WORKLOAD, "dgx-a100", top=5, overrides=OVERRIDES)
    wall = time.perf_counter() - t0
    print(render_search(res))
    print(f"in-process search: {wall:.2f} s, {res.considered / wall:.0f} plans/s")
    paper = simulate(WORKLOAD, "dgx-a100", **OVERRIDES)
    best = res.ranked[0]
    print(f"paper plan tp=8 pp=8 (full recompute, mb 1): {paper.step_time_s:.3f} s, "
          f"MFU {paper.mfu * 100:.1f}%, fits {paper.memory['fits']}")
    print(f"search best: {best.step_time_s:.3f} s, MFU {best.result.mfu * 100:.1f}% -> "
          f"{paper.step_time_s / best.step_time_s:.2f}x the paper plan's speed; "
          f"at least as fast: {best.step_time_s <= paper.step_time_s}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=Path, default=None,
                    help="another checkout to measure as 'before' in this run")
    ap.add_argument("--quick", action="store_true", help="only the speed table")
    args = ap.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    speed_table(args.before)
    if not args.quick:
        paper_comparison()


if __name__ == "__main__":
    main()
