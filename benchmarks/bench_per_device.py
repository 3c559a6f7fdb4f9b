"""Wall time of per-device runs (every DP replica simulated, pipeline sends and DP buckets
as flows on one shared network: simwall.engine.network) on Megatron-LM's 145.6B row
(benchmarks/bench_engine.py's ROW: TP 8, PP 8, 1F1B, full recompute) at several sizes,
96 micro-batches per replica. Prints figures; asserts nothing (the target, <= 5 s on
32,768 GPUs, is issue 18's).

Each size runs cold (every simwall cache cleared) in a fresh process: ``wall`` is
``prepare`` + ``run_prepared(per_device=True)``, ``cpu`` its process time (on a shared
machine the steadier of the two), ``step`` the simulated step time, which must not move
between versions.

Usage: python benchmarks/bench_per_device.py [--before CHECKOUT] [GPUS ...]
(default 1536 8192 32768). ``--before`` also runs every size on the simwall package of
another checkout (e.g. ``--before /work/main`` or a ``git worktree`` of an older commit)
and prints the two side by side with their ratio, from one run."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MICRO_BATCHES = 96          # per replica, as Table 1's 1536-GPU row (2304 / 24 replicas)


def _measure(gpus: int) -> dict:
    """One cold per-device run of ``gpus`` devices in this process."""
    sys.path.insert(0, str(HERE))
    from bench_engine import ROW

    from simwall import clear_caches
    from simwall.api import prepare, run_prepared

    nodes = gpus // 8                                  # dgx-a100: 8 devices per node
    replicas = gpus // (ROW["plan.tp"] * ROW["plan.pp"])
    over = dict(ROW, **{"cluster.nodes": nodes,
                        "training.global_batch": replicas * MICRO_BATCHES})
    clear_caches()
    t0, c0 = time.perf_counter(), time.process_time()
    prep = prepare("gpt3-175b", "dgx-a100", over)
    r = run_prepared(prep, per_device=True)
    return {"gpus": prep.plan.world, "wall_s": time.perf_counter() - t0,
            "cpu_s": time.process_time() - c0, "step_s": r.step_time_s,
            "network": r.engine.get("network")}


def _run(root: Path, gpus: int) -> dict:
    """:func:`_measure` in a fresh interpreter importing simwall from ``root``."""
    code = (f"import sys, json; sys.path.insert(0, {str(root)!r}); "
            f"sys.path.insert(1, {str(HERE)!r}); import bench_per_device as b; "
            f"print(json.dumps(b._measure({gpus})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=Path, help="another checkout to compare with")
    ap.add_argument("gpus", type=int, nargs="*", default=[1536, 8192, 32768])
    args = ap.parse_args()
    root = HERE.parent
    for gpus in args.gpus:
        now = _run(root, gpus)
        line = (f"per-device {now['gpus']:>6} GPUs: wall {now['wall_s']:7.2f} s, "
                f"cpu {now['cpu_s']:7.2f} s, step {now['step_s']:.6f} s")
        if args.before is not None:
            old = _run(args.before, gpus)
            same = "same step" if old["step_s"] == now["step_s"] else \
                f"STEP MOVED from {old['step_s']!r}"
            line += (f" | before: wall {old['wall_s']:7.2f} s, cpu {old['cpu_s']:7.2f} s"
                     f" | cpu x{old['cpu_s'] / now['cpu_s']:.1f} faster, {same}")
        print(line, flush=True)
        print(f"    network {now['network']}", flush=True)


if __name__ == "__main__":
    main()
