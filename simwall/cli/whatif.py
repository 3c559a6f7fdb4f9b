"""``simwall whatif``: scale hardware resources, or project hardware generations forward,
and print a table or JSON."""

from __future__ import annotations

import argparse
import json

from ..config import set_overrides
from ..errors import ConfigError
from ..studies.whatif import (
    AXES,
    MAX_FACTOR,
    MIN_FACTOR,
    generations,
    parse_rates,
    parse_scales,
    render_generations,
    render_whatif,
    whatif,
)
from .common import add_set_option
from .progress import add_quiet_option, progress_of

DESCRIPTION = ("Re-simulate with resources scaled (--scale KEY=FACTOR; keys: "
               + ", ".join(AXES) + ") and show which resource binds (elasticities), or "
               "project the cluster --generations N forward with the growth rates of "
               "Gholami et al., 'AI and Memory Wall', IEEE Micro 2024 (or --rates of one's own), "
               "with today's plan or the best plan per generation (--replan).")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("workload", nargs="?", default="gpt3-175b",
                   help="bundled workload name or YAML path (default: gpt3-175b)")
    p.add_argument("--cluster", help="bundled cluster name or YAML path")
    add_set_option(p, "override one key, e.g. plan.tp=4; repeatable")
    p.add_argument("--scale", dest="scales", action="append", default=[],
                   metavar="KEY=FACTOR", help="scale one resource by a factor from "
                   f"{MIN_FACTOR:g} to {MAX_FACTOR:g}, e.g. memory_bandwidth=2; repeatable")
    p.add_argument("--generations", type=int, metavar="N",
                   help="project N two-year hardware generations forward")
    p.add_argument("--rates", metavar="KEY=FACTOR,...",
                   help="with --generations: growth per generation of the named resources, "
                   f"e.g. peak_flops=2,nic=1.2, each from {MIN_FACTOR:g} to {MAX_FACTOR:g} "
                   "(the others keep "
                   "Gholami et al.'s rates; KEY=1 holds one fixed)")
    p.add_argument("--replan", action="store_true",
                   help="with --generations: run each generation with the best plan the "
                   "plan search finds for its hardware (top 1), not today's plan")
    p.add_argument("--no-elasticities", action="store_true",
                   help="skip the elasticity runs (6 extra simulations at the baseline, "
                   "6 more at the scaled design)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--plot", metavar="FILE", help="write a plot (.png or .svg)")
    add_quiet_option(p)


def run(args: argparse.Namespace) -> int:
    """Prints a table or JSON; errors propagate as SimwallError."""
    from ..studies import plots  # by the command, not its parser

    overrides = set_overrides(args.set_items)
    scales = parse_scales(args.scales)
    if args.plot:
        plots.check_plot_path(args.plot)
    if args.generations is None:
        for flag, given in (("--rates", args.rates is not None), ("--replan", args.replan)):
            if given:
                raise ConfigError(flag, None, "needs --generations N")
    else:
        if scales:
            raise ConfigError("--scale", None, "cannot be combined with --generations")
        growth = parse_rates(args.rates)
        rows = generations(args.workload, args.cluster, args.generations, overrides,
                           growth=growth, progress=progress_of(args), replan=args.replan)
        if args.plot:
            plots.save(plots.generations_plot(rows)[0], args.plot)
        print(json.dumps(rows, indent=2, sort_keys=True) if args.format == "json"
              else render_generations(rows, growth))
        return 0
    if not scales and args.no_elasticities:
        raise ConfigError("--scale", None, "nothing to do: give --scale KEY=FACTOR, "
                          "--generations N, or drop --no-elasticities")
    data = whatif(args.workload, args.cluster, scales, overrides,
                  with_elasticities=not args.no_elasticities)
    if args.plot:
        rows = [{"label": "baseline", **data["baseline"]["breakdown_s"]},
                {"label": "scaled", **data["scaled"]["breakdown_s"]}]
        plots.save(plots.breakdown_plot(rows, title=f"whatif: {data['workload']}")[0],
                   args.plot)
    print(json.dumps(data, indent=2, sort_keys=True) if args.format == "json"
          else render_whatif(data))
    return 0
