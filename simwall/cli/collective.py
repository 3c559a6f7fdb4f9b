"""``simwall collective``: one collective on a cluster's devices, per message size, the
way nccl-tests prints it (time, algorithm and bus bandwidth, algorithm and protocol)."""

from __future__ import annotations

import argparse
import json
import re

from ..config import cluster_overrides, load_cluster, set_overrides
from ..errors import ConfigError
from ..net import build_topology
from ..net.collectives import collective_choice
from ..plan.limits import check_cluster
from .common import CLUSTER_SET_HELP, add_set_option

DESCRIPTION = """\
Time one collective over all devices of a cluster, like nccl-tests: per message size the
time, the algorithm bandwidth (bytes / time) and the bus bandwidth (algbw x the nccl-tests
factor: 2(n-1)/n all_reduce, (n-1)/n all_gather, reduce_scatter and all_to_all, 1
send_recv), and the algorithm and NCCL protocol the model chose. --bytes takes 1M, 8G
(powers of 1024, as nccl-tests) or a range 1M:8G doubling (nccl-tests -b -e -f 2).
send_recv: every rank sends to the next at once (nccl-tests sendrecv_perf)."""

#: The operations and their nccl-tests bus-bandwidth factor (nccl-tests doc/PERFORMANCE.md)
#: as a function of the rank count.
OPS = {
    "all_reduce": lambda n: 2 * (n - 1) / n,
    "all_gather": lambda n: (n - 1) / n,
    "reduce_scatter": lambda n: (n - 1) / n,
    "all_to_all": lambda n: (n - 1) / n,
    "send_recv": lambda n: 1.0,
}

_UNITS = {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3, "T": 1024 ** 4}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?(?:e\+?\d+)?)\s*([KMGT]?)(?:i?B)?\s*$",
                   re.IGNORECASE)
#: Sizes one range may hold (a doubling range from 1 byte to 2^40 holds 41).
MAX_SIZES = 64
#: The largest message, bytes: 10^15 (1 PB) is thousands of times what one device holds
#: (the largest hold about 200 GB), so a larger size can only be a typo.
MAX_BYTES = 10 ** 15


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("op", help=f"one of {', '.join(OPS)}")
    p.add_argument("--cluster", required=True, help="bundled cluster name or YAML path")
    p.add_argument("--bytes", required=True, dest="size",
                   help="message size per rank (nccl-tests 'size'): 1M, 8G, 1e9, or a range "
                   "1M:8G; at most 1e15 bytes")
    add_set_option(p, CLUSTER_SET_HELP)
    p.add_argument("--format", choices=("text", "json"), default="text")


def parse_size(text: str) -> int:
    """Bytes of ``1M`` / ``8G`` / ``4096`` / ``1e9`` (K, M, G, T: powers of 1024; an
    exponent is decimal), 1 to :data:`MAX_BYTES`; ConfigError on anything else."""
    m = _SIZE.match(text)
    if not m:
        raise ConfigError("--bytes", None,
                          f"expected a size like 4096, 1e9, 1M or 8G, got {text!r}")
    value = float(m.group(1)) * _UNITS[m.group(2).upper()]
    if value > MAX_BYTES:  # before int(): 1e999 reads as inf
        raise ConfigError("--bytes", None, f"expected at most {MAX_BYTES:.0e} bytes (1 PB, "
                          f"far more than a device holds), got {text!r}")
    if value < 1 or value != int(value):
        raise ConfigError("--bytes", None, f"expected a whole number of bytes >= 1, got {text!r}")
    return int(value)


def parse_sizes(text: str) -> list[int]:
    """One size, or ``LOW:HIGH`` doubling from LOW while <= HIGH (nccl-tests -f 2)."""
    if ":" not in text:
        return [parse_size(text)]
    low_s, _, high_s = text.partition(":")
    low, high = parse_size(low_s), parse_size(high_s)
    if high < low:
        raise ConfigError("--bytes", None, f"range end {high_s!r} is below its start {low_s!r}")
    out = []
    b = low
    while b <= high:
        out.append(b)
        b *= 2
    if len(out) > MAX_SIZES:
        raise ConfigError("--bytes", None, f"range holds {len(out)} sizes, at most {MAX_SIZES}")
    return out


def rows(op: str, cluster_name: str, sizes: list[int], set_items: list[str]) -> dict:
    """The cluster's name, rank count and one row per size (pure of printing)."""
    if op not in OPS:
        raise ConfigError("op", None, f"expected one of {', '.join(OPS)}, got {op!r}")
    cluster = load_cluster(cluster_name, cluster_overrides(set_overrides(set_items)))
    if cluster.nodes == "auto":           # one node unless --set cluster.nodes=N
        cluster = cluster.model_copy(update={"nodes": 1})
    check_cluster(cluster)
    topo = build_topology(cluster)
    n = topo.num_devices
    if n < 2:
        raise ConfigError(cluster.file, "nodes", f"a collective needs 2 or more devices, "
                          f"the cluster has {n}")
    devices = list(range(n))
    if op == "send_recv":
        groups = [[d, (d + 1) % n] for d in devices]
    else:
        groups = [devices]
    out = []
    for b in sizes:
        algorithm, protocol, latency_s, bandwidth_s = collective_choice(
            topo, op, groups, float(b))
        time_s = latency_s + bandwidth_s
        algbw = b / time_s if time_s > 0 else 0.0
        out.append({"bytes": b, "time_us": time_s * 1e6, "algbw_gb_per_s": algbw / 1e9,
                    "busbw_gb_per_s": algbw * OPS[op](n) / 1e9, "algorithm": algorithm,
                    "protocol": protocol})
    return {"op": op, "cluster": cluster.name, "ranks": n, "nodes": cluster.nodes,
            "rows": out}


def run(args: argparse.Namespace) -> int:
    result = rows(args.op, args.cluster, parse_sizes(args.size), args.set_items)
    if args.format == "json":
        print(json.dumps(result, indent=2))
        return 0
    print(f"# {result['op']} on {result['cluster']}: {result['ranks']} ranks, "
          f"{result['nodes']} node(s)")
    print(f"# {'size (B)':>14} {'time (us)':>12} {'algbw (GB/s)':>13} {'busbw (GB/s)':>13}"
          f"  algorithm     protocol")
    for r in result["rows"]:
        print(f"  {r['bytes']:>14d} {r['time_us']:>12.2f} {r['algbw_gb_per_s']:>13.2f} "
              f"{r['busbw_gb_per_s']:>13.2f}  {r['algorithm']:<13} {r['protocol']}")
    return 0
