"""``simwall run``: simulate one training step and print it as a table or JSON."""

from __future__ import annotations

import argparse

from .. import api
from ..registry import OUTPUT_FORMATS
from ..report import StepResult, render
from .common import add_set_option

DESCRIPTION = None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("workload", nargs="?", default="gpt3-175b",
                   help="bundled workload name or YAML path (default: gpt3-175b)")
    p.add_argument("--cluster", help="bundled cluster name or YAML path "
                   "(default: the workload's defaults.cluster)")
    add_set_option(p)
    p.add_argument("--format", choices=OUTPUT_FORMATS.choices(), default="table")
    p.add_argument("--trace", metavar="FILE", help="write a Chrome trace (JSON) to FILE")
    p.add_argument("--per-device", action="store_true",
                   help="simulate every device instead of one per stage")
    p.add_argument("--plot", metavar="FILE", help="write the breakdown, memory per stage and "
                   "memory over the step (.png or .svg; needs simwall[plot])")


def run(args: argparse.Namespace) -> int:
    api.cli_overrides(args.set_items)  # report a bad --set before any work
    if args.plot:  # issue 6: a bad image name fails before the run
        from ..studies import plots  # only with --plot: it is heavy to import
        plots.check_plot_path(args.plot)

    result = api.simulate_from_cli(args.workload, args.cluster, list(args.set_items),
                                   args.per_device, args.trace)
    print(render(result, args.format))
    if args.plot:
        _plot(args, result)
    return 0


def _plot(args: argparse.Namespace, result: StepResult) -> list[dict]:
    """What ``--plot FILE`` draws (:func:`simwall.studies.plots.run_plot`); re-simulates
    with a trace when ``result`` has none (the memory-over-step panel needs its counter
    events)."""
    if not result.trace_events:
        result = api.simulate(args.workload or "gpt3-175b", args.cluster,
                              per_device=args.per_device, trace=True,
                              **api.cli_overrides(args.set_items))
    from ..studies import plots
    fig, data = plots.run_plot(result)
    plots.save(fig, args.plot)
    return data
