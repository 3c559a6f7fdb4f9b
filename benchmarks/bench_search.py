"""Wall time of ``simwall plan`` on Megatron-LM's 145.6B row (Narayanan et al. 2021, SC21,
Table 1: 80 layers, h 12288, 96 heads, vocabulary 51200, sequence 2048, global batch 2304)
on 1536 A100s (dgx-a100, 192 nodes), and its best plan against the paper's TP 8 x PP 8
(full recompute, 1F1B, micro-batch 1: examples/megatron-145b.yaml) in simwall's model.
Target: under 60 s on a 2-core machine (issue 5). Prints figures; asserts nothing.

    /work/venv/bin/python benchmarks/bench_search.py
"""

from __future__ import annotations

import time
from pathlib import Path

from simwall.api import simulate
from simwall.studies.search import render_search, search

WORKLOAD = str(Path(__file__).resolve().parents[1] / "examples" / "megatron-145b.yaml")
OVERRIDES = {"cluster.nodes": 192}


def main() -> None:
    t0 = time.perf_counter()
    res = search(WORKLOAD, "dgx-a100", top=5, overrides=OVERRIDES)
    wall = time.perf_counter() - t0
    print(render_search(res))
    print(f"search wall time: {wall:.1f} s (target < 60 s)")
    paper = simulate(WORKLOAD, "dgx-a100", **OVERRIDES)
    best = res.ranked[0]
    print(f"paper plan tp=8 pp=8 (full recompute, mb 1): {paper.step_time_s:.3f} s, "
          f"MFU {paper.mfu * 100:.1f}%, fits {paper.memory['fits']}")
    print(f"search best: {best.step_time_s:.3f} s, MFU {best.result.mfu * 100:.1f}% -> "
          f"{paper.step_time_s / best.step_time_s:.2f}x the paper plan's speed; "
          f"at least as fast: {best.step_time_s <= paper.step_time_s}")


if __name__ == "__main__":
    main()
