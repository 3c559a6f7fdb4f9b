"""``simwall roofline``: the per-op roofline of a workload on one device."""

from __future__ import annotations

import argparse

from ..hardware.catalog import get_device, resolve_device
from ..hardware.efficiency import check_precision
from ..model import roofline
from ..model.limits import resolve_checked
from .common import add_set_option, workload_and_cluster

DESCRIPTION = None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("workload", help="bundled workload name or YAML path")
    p.add_argument("--device", help="catalog device (default: the default cluster's device)")
    add_set_option(p)
    p.add_argument("--mode", choices=("train", "prefill", "decode"), default="train")
    p.add_argument("--plot", metavar="FILE", help="write the roofline with the ops as points "
                   "(.png or .svg; needs simwall[plot])")


def run(args: argparse.Namespace) -> int:
    from ..studies import plots  # by the command, not its parser

    items = list(args.set_items)
    if args.device:  # a wrong name is the option's error, not the cluster file's
        items.insert(0, f"cluster.device={get_device(args.device, None, '--device').name}")
    workload, cluster = workload_and_cluster(args.workload, None, items)
    resolve_checked(workload, cluster)  # the plan checks of 'simwall run'
    device = resolve_device(cluster.device, "device", cluster.file)
    check_precision(workload, device)
    if args.plot:  # issue 6
        plots.check_plot_path(args.plot)
    rows = roofline.roofline_rows(workload, device, args.mode)
    if args.plot:  # before printing, so '| head' cannot stop the image being written
        plots.plot_for_roofline(args.plot, rows, device)
    print(roofline.render(rows))
    return 0
