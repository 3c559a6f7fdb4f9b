"""``simwall design``: several clusters against one or more workloads, each pair with its
best plan from the plan search, in one table (or JSON / CSV) and one plot."""

from __future__ import annotations

import argparse
import csv
import json
import sys

from ..config import set_overrides
from .common import add_set_option
from .plan import RECORD_FORMATS
from .progress import add_quiet_option, progress_of

DESCRIPTION = ("Run the plan search for every (cluster, workload) pair and compare each "
               "pair's best plan: step time, MFU, memory verdict, energy per token, cost "
               "per million tokens (clusters with price_per_device_hour) and the binding "
               "resource (the elasticities of 'simwall whatif').")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("workloads", nargs="+", metavar="WORKLOAD",
                   help="bundled workload names or YAML paths")
    p.add_argument("--cluster", dest="clusters", action="append", required=True,
                   metavar="CLUSTER", help="bundled cluster name or YAML path; repeatable")
    add_set_option(p, "override one key for every pair, e.g. training.global_batch=512 or "
                   "cluster.nodes=4; repeatable")
    p.add_argument("--top-plans", type=int, default=1, metavar="N",
                   help="plans the search keeps per pair (1); it simulates 3 x N with the "
                   "engine and the table shows the fastest")
    p.add_argument("--no-binding", action="store_true",
                   help="skip the elasticity runs that name the binding resource (6 "
                   "simulations per pair)")
    p.add_argument("--format", choices=RECORD_FORMATS, default="table",
                   help="table (default), or one record per (cluster, workload) pair with "
                   "design's own columns (workload, cluster, inter_topology, devices, plan, "
                   "step_time_s, tokens_per_s, mfu, fits, peak_bytes, capacity_bytes, "
                   "j_per_token, w_per_device, cost_per_million_tokens, binding, "
                   "plans_considered, plans_fit, plans_simulated, then "
                   "elasticity.RESOURCE per resource measured): json (a list) or csv")
    p.add_argument("--plot", metavar="FILE", help="write tokens/s per GPU against energy "
                   "per token, one marker per pair (.png or .svg)")
    add_quiet_option(p)


def run(args: argparse.Namespace) -> int:
    from ..studies import plots  # by the command, not its parser
    from ..studies.design import design, design_records, render_design

    if args.plot:
        plots.check_plot_path(args.plot)
    rows = design(args.workloads, args.clusters, set_overrides(args.set_items),
                  top_plans=args.top_plans, with_binding=not args.no_binding,
                  progress=progress_of(args))
    if args.plot:
        plots.save(plots.design_plot(rows)[0], args.plot)
    if args.format == "table":
        print(render_design(rows, args.top_plans))
    elif args.format == "json":
        print(json.dumps(design_records(rows), indent=1))
    else:  # csv, in the design columns' own order (not a sweep record's)
        recs = design_records(rows)
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(list(recs[0]) if recs else [])
        for rec in recs:
            w.writerow(["" if v is None else v for v in rec.values()])
    return 0
