"""Sweep throughput: configurations per second of a 1000-point sweep of Llama 2 7B
(128 A100s, dgx-a100) over tp x pp x micro-batch x inter-node link bandwidth, on 1 and 2
local processes (spawned workers, the default executor of ``simwall sweep``). Checks
that both runs write byte-identical JSONL. Prints figures; asserts nothing else.
``--before PATH`` first runs the one-process sweep on another checkout (e.g.
``/work/main``, workers started with its code), then prints before, after, their ratio
and whether the two wrote byte-identical records.

    PYTHONPATH=. /work/venv/bin/python benchmarks/bench_sweep.py [--points N] [--before PATH]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from simwall.studies.sweeps import SweepFile, expand, run_sweep

#: 4 x 5 x 5 x 10 = 1000 points. Some (micro-batch 16 with dp 128) do not split the
#: global batch of 1024 and come back as error records, as in a real exploratory sweep.
GRID = {
    "plan.tp": [1, 2, 4, 8],
    "plan.pp": [1, 2, 4, 8, 16],
    "training.micro_batch": [1, 2, 4, 8, 16],
    # HDR InfiniBand is 25 GB/s per direction; sweep 5 to 50 GB/s per NIC.
    "cluster.inter.link.bandwidth": {"range": [5.0e9, 55.0e9, 5.0e9]},
}


def _children_cpu_s() -> float:
    """CPU seconds used by finished child processes (the pool's workers): a figure that
    does not depend on what else the machine runs."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _before(path: str, points: int, out: Path) -> float:
    """Configurations per worker CPU-second of the one-process sweep on the checkout at
    ``path`` (this script run there, writing its records to ``out``)."""
    env = dict(os.environ, PYTHONPATH=os.path.abspath(path))
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--points", str(points),
                           "--one", str(out)], env=env, cwd=os.path.abspath(path),
                          capture_output=True, text=True, check=True)
    print(f"before ({path}): {done.stdout.strip().splitlines()[-1]}")
    return float(done.stdout.strip().splitlines()[-1].split(" = ")[-1].split()[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=1000, help="truncate the sweep to N points")
    ap.add_argument("--before", metavar="PATH",
                    help="also run the one-process sweep on the checkout at PATH")
    ap.add_argument("--one", metavar="OUT", help=argparse.SUPPRESS)
    args = ap.parse_args()
    spec = SweepFile(workload="llama2-7b", cluster="dgx-a100", grid=GRID)
    grid, _ = spec.axes()
    n = min(args.points, len(expand(grid)))
    if n < len(expand(grid)):  # truncate the last axis' values evenly: keep it simple
        spec = SweepFile(workload="llama2-7b", cluster="dgx-a100",
                         grid={**GRID, "cluster.inter.link.bandwidth":
                               grid["cluster.inter.link.bandwidth"][:max(1, n // 100)]})
    outputs = {}
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        before_out = Path(tmp) / "before.jsonl"
        before = _before(args.before, args.points, before_out) if args.before else None
        for workers in ((1,) if args.one else (1, 2)):
            if args.one:
                out = Path(args.one)
            else:
                out = Path(tmp) / f"w{workers}.jsonl"
            cpu0 = _children_cpu_s()
            t0 = time.perf_counter()
            with cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(
                    "spawn")) as pool:
                summary = run_sweep(spec, out, executor=pool, progress=False)
            wall = time.perf_counter() - t0
            cpu = _children_cpu_s() - cpu0
            outputs[workers] = out.read_bytes()
            print(f"{workers} process{'es' if workers > 1 else ''}: {summary.points} points "
                  f"({summary.errors} error records) in {wall:.1f} s -> "
                  f"{summary.points / wall:.1f} configurations/s (worker start-up included); "
                  f"workers' CPU {cpu:.1f} s = {summary.points / cpu:.1f} configurations per "
                  f"CPU-second")
            rates[workers] = summary.points / cpu
        if args.one:
            return
        if before is not None:
            print(f"per worker CPU-second, one process: before {before:.1f}, after "
                  f"{rates[1]:.1f} ({rates[1] / before:.1f}x); records identical before and "
                  f"after: {before_out.read_bytes() == outputs[1]}")
    print("records identical on 1 and 2 processes:", outputs[1] == outputs[2])
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average (1, 5, 15 min) at the end: {load} (the machine may be shared)")


if __name__ == "__main__":
    main()
