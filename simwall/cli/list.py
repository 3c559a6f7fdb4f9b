"""``simwall list``: the bundled devices, links, topologies or workloads, one per line."""

from __future__ import annotations

import argparse

from ..config import bundled_names, load_cluster, load_workload
from ..errors import SimwallError
from ..hardware.catalog import devices, links

DESCRIPTION = None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", choices=("devices", "links", "topologies", "workloads"))


def run(args: argparse.Namespace) -> int:
    lines = {"devices": _devices, "links": _links, "topologies": _topologies,
             "workloads": _workloads}[args.what]()
    print("\n".join(lines))
    return 0


def _devices() -> list[str]:
    lines = [f"{'device':<22} {'kind':<4} {'bf16 TFLOP/s':>12} {'HBM GiB':>8} {'HBM GB/s':>9}"]
    for name, dev in sorted(devices().items()):
        lines.append(f"{name:<22} {dev.kind:<4} {dev.peak('bf16') / 1e12:>12,.0f} "
                     f"{dev.memory_capacity_bytes / 2**30:>8,.0f} "
                     f"{dev.memory_bandwidth_bytes_per_s / 1e9:>9,.0f}")
    return lines


def _links() -> list[str]:
    """Catalog links: bandwidth per direction (GB/s), latency per hop (us) and the
    achievable fraction of the bandwidth."""
    lines = [f"{'link':<22} {'GB/s per dir':>12} {'latency us':>10} {'efficiency':>10}"]
    for name, link in sorted(links().items()):
        lines.append(f"{name:<22} {link.bandwidth_bytes_per_s / 1e9:>12,.2f} "
                     f"{link.latency_s * 1e6:>10,.2f} {link.efficiency:>10.2f}")
    return lines


def _topologies() -> list[str]:
    lines = []
    for name in bundled_names("cluster"):
        try:
            c = load_cluster(name)
        except SimwallError as err:
            lines.append(f"{name:<14} (invalid: {err})")
            continue
        device = (c.device if isinstance(c.device, str) else
                  c.device.name if c.device.name and c.device.name != c.device.base
                  else f"{c.device.base} (modified)")
        lines.append(f"{name:<14} {device:<22} nodes {c.nodes!s:>4} x "
                     f"{c.devices_per_node}  intra {c.intra.topology}, "
                     f"inter {c.inter.topology}")
    return lines


def _workloads() -> list[str]:
    lines = []
    for name in bundled_names("workload"):
        try:
            w = load_workload(name)
        except SimwallError as err:
            lines.append(f"{name:<14} (invalid: {err})")
            continue
        m, p = w.model, w.plan
        lines.append(f"{name:<14} {m.kind} {m.layers:>3} layers, hidden {m.hidden:>5}, "
                     f"seq {m.seq_len:>5}, batch {w.training.global_batch:>4}; "
                     f"tp {p.tp} " + (f"cp {p.cp} " if p.cp > 1 else "")
                     + f"pp {p.pp} dp {p.dp}" + (f" ep {p.ep}" if p.ep > 1 else "")
                     + (f" ({m.experts} experts, top {m.top_k})" if m.moe else "")
                     + f"; {w.defaults.cluster}"
                     + (f" x {w.defaults.devices}" if w.defaults.devices else ""))
    return lines
