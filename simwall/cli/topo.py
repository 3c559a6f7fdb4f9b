"""``simwall topo``: build a cluster's topology, describe it and one route."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from ..config import cluster_overrides, load_cluster, set_overrides
from ..errors import ConfigError
from ..net import Topology, build_topology
from ..plan.limits import check_cluster
from .common import CLUSTER_SET_HELP, add_set_option
from .progress import add_quiet_option

DESCRIPTION = None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("cluster", help="bundled cluster name or YAML path")
    add_set_option(p, CLUSTER_SET_HELP)
    p.add_argument("--route", nargs=2, type=int, metavar=("A", "B"),
                   help="report the route between devices A and B (default: 0 and the last)")
    p.add_argument("--export", metavar="FILE",
                   help="write the cluster out as a cluster file that gives its graph "
                        "explicitly (YAML, or GraphML for FILE.graphml), to edit")
    add_quiet_option(p)


def run(args: argparse.Namespace) -> int:
    cluster = load_cluster(args.cluster, cluster_overrides(set_overrides(args.set_items)))
    if cluster.nodes == "auto":  # a topology needs a size; one node unless --set
        cluster = cluster.model_copy(update={"nodes": 1})
    check_cluster(cluster)  # refuse a billion-device graph before building it
    if getattr(args, "export", None):
        return _export(cluster, args.export)
    with _status(args, cluster, f"building {cluster.name} and measuring its bisection "
                                f"(max-flow)"):
        topo = build_topology(cluster)
        lines = [f"# {cluster.file}", *_mapping_lines(topo.describe())]
    n = topo.num_devices
    if args.route:
        lines.append(route_line(topo, *args.route))
    elif n > 1:  # by default, from the first device to the last
        lines.append(route_line(topo, 0, n - 1))
    else:
        lines.append("route: none (the cluster has one device)")
    print("\n".join(lines))
    return 0


def route_line(topo: Topology, a: int, b: int) -> str:
    """The route from device ``a`` to device ``b``: hops, bottleneck bandwidth and
    latency. A device out of range, or ``a == b`` (no link to cross, so no bandwidth),
    is a ConfigError naming ``--route``."""
    n = topo.num_devices
    for dev in (a, b):
        if not 0 <= dev < n:
            raise ConfigError("--route", None, f"device {dev} out of range: expected 0 to "
                              f"{n - 1} ({n} devices)")
    if a == b:
        raise ConfigError("--route", None, f"expected two different devices, got {a} "
                          f"twice (a device reaches itself over no link)")
    hops = topo.route(a, b)
    return (f"route {a} -> {b}: {len(hops)} hops, bottleneck "
            f"{topo.route_bandwidth_bytes_per_s(a, b) / 1e9:,.1f} GB/s, latency "
            f"{topo.route_latency_s(a, b) * 1e6:,.2f} us")


#: Devices from which ``topo`` says on a terminal what it is doing: the bisection's
#: max-flow grows with the graph (8 s at 16,384 devices, about a minute at 131,072, on the
#: 2-core development machine); one call, so a status line rather than a bar.
STATUS_DEVICES = 4096


@contextlib.contextmanager
def _status(args: argparse.Namespace, cluster, what: str) -> Iterator[None]:
    """On a terminal (stderr), for a cluster of :data:`STATUS_DEVICES` devices or more,
    a status line while ``what`` runs, erased after; nothing with ``--quiet`` or when
    stderr is piped, so stdout and logs are the same either way."""
    devices = cluster.nodes * cluster.devices_per_node
    isatty = getattr(sys.stderr, "isatty", None)
    show = (devices >= STATUS_DEVICES and not args.quiet and isatty is not None
            and isatty())
    if show:
        print(f"simwall topo: {what}, {devices:,} devices...", end="", file=sys.stderr,
              flush=True)
    try:
        yield
    finally:
        if show:
            print("\r\033[K", end="", file=sys.stderr, flush=True)


def _export(cluster, path: str) -> int:
    """Write ``cluster`` as an explicit graph file (:mod:`simwall.net.export`)."""
    from ..net.export import export_graph_text, export_graphml_text
    from ..report.outputs import check_output_path, write_text
    check_output_path(path, "--export")
    graphml = path.lower().endswith(".graphml")
    text = (export_graphml_text if graphml else export_graph_text)(cluster)
    write_text(path, text, "--export")
    print(f"wrote {path}: the {cluster.name} cluster ({cluster.nodes} nodes) as an explicit "
          f"graph (simwall run WORKLOAD --cluster {path})")
    return 0


def _fmt(value: Any, key: str = "") -> str:
    if isinstance(value, float) and key.endswith("_bytes_per_s"):
        return f"{value / 1e9:,.1f} GB/s"
    if isinstance(value, float) and key.endswith("_s"):
        return f"{value * 1e6:,.2f} us"
    if isinstance(value, float):
        return f"{value:,.6g}"
    return str(value)


def _mapping_lines(data: dict, indent: int = 0) -> list[str]:
    """Indented ``key: value`` lines; rates in GB/s, times in us."""
    pad = "  " * indent
    out: list[str] = []
    for key, value in data.items():
        if isinstance(value, dict):
            out.append(f"{pad}{key}:")
            out.extend(_mapping_lines(value, indent + 1))
        elif isinstance(value, (list, tuple)) and any(isinstance(v, dict) for v in value):
            out.append(f"{pad}{key}:")  # one line per item, e.g. per link class
            for item in value:
                fields = item.items() if isinstance(item, dict) else [("", item)]
                out.append(f"{pad}  - " + ", ".join(
                    f"{k}: {_fmt(v, str(k))}" if k != "" else str(v)
                    for k, v in fields))
        elif isinstance(value, (list, tuple)):
            out.append(f"{pad}{key}: {', '.join(_fmt(v, str(key)) for v in value)}")
        else:
            out.append(f"{pad}{key}: {_fmt(value, str(key))}")
    return out
