"""Wall time of per-device runs (every DP replica simulated, pipeline sends and DP buckets
as flows on one shared network: simwall.engine.network) on Megatron-LM's 145.6B row
(benchmarks/bench_engine.py's ROW) at a few sizes. Prints figures; asserts nothing.

Usage: python benchmarks/bench_per_device.py [NODES:GLOBAL_BATCH ...] (default 24:288)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_engine import ROW

from simwall import clear_caches
from simwall.api import prepare, run_prepared

if __name__ == "__main__":
    for arg in sys.argv[1:] or ["24:288"]:
        nodes, batch = (int(x) for x in arg.split(":"))
        clear_caches()
        over = dict(ROW, **{"cluster.nodes": nodes, "training.global_batch": batch})
        t0 = time.perf_counter()
        prep = prepare("gpt3-175b", "dgx-a100", over)
        r = run_prepared(prep, per_device=True)
        wall = time.perf_counter() - t0
        print(f"per-device {prep.plan.world:>5} devices, m={prep.plan.micro_batches}: "
              f"wall {wall:7.2f} s, step {r.step_time_s:.6f} s, "
              f"network {r.engine.get('network')}")
