"""The Python API: one simulated step, then a small sweep written to CSV and read back.

    python examples/api_sweep.py

GPT-2 1.5B on two DGX A100 nodes (16 GPUs). Overrides are key paths, as with
``simwall run --set``: ``plan.*``, ``training.*``, ``model.*`` edit the workload,
``cluster.*`` the cluster.
"""

from concurrent.futures import ProcessPoolExecutor

import simwall

if __name__ == "__main__":  # needed: sweep workers are spawned, not forked
    # One step. simulate(workload, cluster=None, **overrides); cluster None = the
    # workload's defaults.cluster.
    r = simwall.simulate("gpt2", "dgx-a100", **{"cluster.nodes": 2, "plan.zero": 3})
    print(f"{r.workload} on {r.world} x {r.device}: step {r.step_time_s:.3f} s, "
          f"MFU {r.mfu:.1%}, peak {r.memory['peak_bytes'] / 1e9:.1f} GB, "
          f"fits {r.memory['fits']}")
    rec = r.to_record()  # one flat dict: inputs, plan.*, step_time_s, breakdown.*_s, ...
    print(len(rec), "columns, e.g.", {k: rec[k] for k in ("plan.tp", "plan.dp", "mfu")})

    # A sweep: every point of the grid (Cartesian product, last axis fastest) on a base.
    base = {"workload": "gpt2", "cluster": "dgx-a100", "overrides": {"cluster.nodes": 2}}
    grid = {"plan.pp": [1, 2, 3], "training.micro_batch": [2, 4]}
    with ProcessPoolExecutor(2) as pool:  # executor=None runs the points here, one by one
        records = list(simwall.sweep(base, grid, executor=pool))
    for rec in records:  # in sweep-index order; a point that cannot run has an error
        print(rec["sweep.index"], rec["sweep.plan.pp"], rec["sweep.training.micro_batch"],
              rec["error"] or f"{rec['step_time_s']:.3f} s  MFU {rec['mfu']:.1%}")

    # To CSV (or .jsonl, .parquet) with simwall's own writer, and back: numbers come back
    # as numbers, booleans as booleans, an empty cell as None (pandas users:
    # pandas.DataFrame(records)).
    simwall.write_records("api_sweep.csv", records)
    back = simwall.read_records("api_sweep.csv")
    print(f"{len(back)} records -> api_sweep.csv; fits:",
          [rec["memory.fits"] for rec in back])
