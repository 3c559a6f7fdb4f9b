"""The ``simwall`` command: a thin argparse layer over the library.

``main(argv) -> int`` parses, calls the library and prints. Every
:class:`~simwall.errors.SimwallError` (and every usage error) becomes one line on stderr,
``simwall: error: <message>``, and exit status 2, with no traceback. Heavy modules are
imported inside the subcommands so ``simwall --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import ConfigError, SimwallError

__all__ = ["build_parser", "main"]

_EPILOG = """\
naming: 'simwall check' checks a user's config and plan; 'simwall validate'
compares simwall against published runs.

examples:
  simwall run gpt3-175b --set plan.tp=4 --format json
  simwall show llama3-405b
  simwall topo dgx-a100 --set cluster.nodes=4 --route 0 31
  simwall roofline gpt2 --device A100-SXM4-80GB --mode train
  simwall sweep examples/sweep-tp-pp.yaml -o results.csv
  simwall plan gpt2 --cluster single-node --top 5
  simwall check llama2-7b --set plan.tp=3
  simwall whatif gpt3-175b --scale memory_bandwidth=2
  simwall whatif gpt3-175b --generations 4 --plot generations.png
  simwall plot results.csv --x plan.tp --y step_time_s --hue plan.zero
  simwall validate --format markdown
"""


class _UsageError(Exception):
    """argparse's complaint, raised instead of printing usage and exiting."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]
        # "simwall run" -> "run: ...", so main() prints one "simwall: error:" prefix.
        command = self.prog.partition(" ")[2]
        raise _UsageError(f"{command}: {message}" if command else message)


def _add_set(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", dest="set_items", action="append", default=[], metavar="KEY=VALUE",
                   help="override one key (YAML value), e.g. plan.tp=4 or cluster.nodes=8; "
                        "repeatable; cluster.* keys go to the cluster")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``simwall`` (subcommands run, list, show, topo, roofline)."""
    parser = _Parser(prog="simwall", description="Discrete-event simulator of distributed "
                     "deep-learning training: step time and per-device memory.",
                     epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    from .. import __version__
    parser.add_argument("--version", action="version", version=f"simwall {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("run", help="simulate one training step")
    p.add_argument("workload", nargs="?", default="gpt3-175b",
                   help="bundled workload name or YAML path (default: gpt3-175b)")
    p.add_argument("--cluster", help="bundled cluster name or YAML path "
                   "(default: the workload's defaults.cluster)")
    _add_set(p)
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--trace", metavar="FILE", help="write a Chrome trace (JSON) to FILE")
    p.add_argument("--per-device", action="store_true",
                   help="simulate every device instead of one per stage")
    p.add_argument("--plot", metavar="FILE", help="write the breakdown, memory per stage and "
                   "memory over the step (.png or .svg; needs simwall[plot])")

    p = sub.add_parser("list", help="list bundled devices, topologies or workloads")
    p.add_argument("what", choices=("devices", "topologies", "workloads"))

    p = sub.add_parser("show", help="print a resolved workload, cluster or device as YAML")
    p.add_argument("name", help="workload, cluster or device name (looked up in that order) "
                   "or a YAML path")
    p.add_argument("--cluster", help="for a workload: resolve the plan on this cluster")
    _add_set(p)

    p = sub.add_parser("topo", help="build a cluster's topology and describe it")
    p.add_argument("cluster", help="bundled cluster name or YAML path")
    _add_set(p)
    p.add_argument("--route", nargs=2, type=int, metavar=("A", "B"),
                   help="report the route between devices A and B (default: 0 and the last)")

    p = sub.add_parser("roofline", help="per-op roofline of a workload on one device")
    p.add_argument("workload", help="bundled workload name or YAML path")
    p.add_argument("--device", help="catalog device (default: the default cluster's device)")
    _add_set(p)
    p.add_argument("--mode", choices=("train", "prefill", "decode"), default="train")
    p.add_argument("--plot", metavar="FILE", help="write the roofline with the ops as points "
                   "(.png or .svg; needs simwall[plot])")

    # Issue 5: sweeps, plan search and plan checking (simwall/sweep.py, simwall/search.py).
    from ..studies.search import add_check_parser, add_plan_parser
    from ..studies.sweeps import add_sweep_parser
    add_sweep_parser(sub)
    add_plan_parser(sub)
    add_check_parser(sub)
    # Issue 6: what-ifs and plots (simwall/whatif.py, simwall/plots.py).
    from ..studies.plots import add_plot_parser
    from ..studies.whatif import add_whatif_parser
    add_whatif_parser(sub)
    add_plot_parser(sub)
    # Issues 4 and 8: validation against published runs (simwall/validate.py).
    from ..studies.validate import add_validate_parser
    add_validate_parser(sub)
    return parser


# ---------------------------------------------------------------------------------------
# Helpers


def _yaml(data: Any) -> str:
    """Block-style YAML, except lists of scalars, which stay on one line."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def flow_list(dumper: yaml.SafeDumper, items: list) -> yaml.Node:
        flow = all(not isinstance(v, (dict, list)) for v in items)
        return dumper.represent_sequence("tag:yaml.org,2002:seq", items, flow_style=flow)

    Dumper.add_representer(list, flow_list)
    return yaml.dump(data, Dumper=Dumper, sort_keys=False, default_flow_style=False, width=100)


def _gb(x: float) -> str:
    return f"{x / 1e9:,.1f}"


def _cluster_overrides(items: list[str]) -> list[tuple[str, Any]]:
    """``--set`` items for a cluster command: the ``cluster.`` prefix is optional."""
    from ..config import parse_set

    out = []
    for item in items:
        key, value = parse_set(item)
        out.append((key.removeprefix("cluster."), value))
    return out


def _workload_and_cluster(name: str, cluster_name: str | None, items: list[str]):
    """(workload, cluster) loaded with ``--set`` overrides split between them."""
    from ..config import load_cluster, load_workload, split_overrides

    w_over, c_over = split_overrides(items)
    workload = load_workload(name, w_over)
    if cluster_name:
        return workload, load_cluster(cluster_name, c_over)
    from ..engine.step import load_default_cluster

    return workload, load_default_cluster(workload, c_over)


def _kind_of(name: str) -> str:
    """'workload', 'cluster' or 'device' for ``simwall show NAME``."""
    from pathlib import Path

    from ..config import bundled_dir, bundled_names, load_yaml

    if Path(name).suffix in (".yaml", ".yml") or "/" in name:
        doc = load_yaml(name)
        return "cluster" if isinstance(doc, dict) and "model" not in doc and (
            {"device", "devices_per_node", "intra", "inter", "nodes"} & set(doc)) \
            else "workload"
    for kind in ("workload", "cluster"):
        if (bundled_dir(kind) / f"{name}.yaml").is_file():
            return kind
    from ..hardware.catalog import devices, get_device

    try:
        get_device(name)
        return "device"
    except ConfigError:
        import difflib

        names = bundled_names("workload") + bundled_names("cluster") + sorted(devices())
        near = difflib.get_close_matches(name, names, n=1, cutoff=0.4)
        hint = f"; did you mean '{near[0]}'?" if near else ""
        raise ConfigError(None, None, f"no workload, cluster or device named '{name}'{hint} "
                          f"(see 'simwall list workloads|topologies|devices')") from None


# ---------------------------------------------------------------------------------------
# Subcommands


def _cmd_run(args: argparse.Namespace) -> int:
    from ..config import split_overrides

    split_overrides(args.set_items)  # report bad --set syntax before any work
    from .. import api
    from ..report import result as report
    if args.plot:  # issue 6: a bad image name fails before the run
        from ..studies.plots import check_plot_path
        check_plot_path(args.plot)

    result = api.simulate_from_cli(args.workload, args.cluster, list(args.set_items),
                                   args.per_device, args.trace)
    if args.format == "json":
        print(json.dumps(result.to_dict(), indent=2, sort_keys=True))
    else:
        print(report.render_table(result))
    if args.plot:
        from ..studies.plots import plot_for_run
        plot_for_run(args, result)
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from ..config import bundled_names, load_cluster, load_workload

    lines: list[str] = []
    if args.what == "devices":
        from ..hardware.catalog import devices

        lines.append(f"{'device':<22} {'kind':<4} {'bf16 TFLOP/s':>12} {'HBM GB':>8} "
                     f"{'HBM GB/s':>9}")
        for name, dev in sorted(devices().items()):
            lines.append(f"{name:<22} {dev.kind:<4} {dev.peak('bf16') / 1e12:>12,.0f} "
                         f"{dev.memory_capacity_bytes / 1e9:>8,.0f} "
                         f"{dev.memory_bandwidth_bytes_per_s / 1e9:>9,.0f}")
    elif args.what == "topologies":
        for name in bundled_names("cluster"):
            try:
                c = load_cluster(name)
            except SimwallError as err:
                lines.append(f"{name:<14} (invalid: {err})")
                continue
            device = c.device if isinstance(c.device, str) else f"{c.device.base} (modified)"
            lines.append(f"{name:<14} {device:<22} nodes {c.nodes!s:>4} x "
                         f"{c.devices_per_node}  intra {c.intra.topology}, "
                         f"inter {c.inter.topology}")
    else:
        for name in bundled_names("workload"):
            try:
                w = load_workload(name)
            except SimwallError as err:
                lines.append(f"{name:<14} (invalid: {err})")
                continue
            m, p = w.model, w.plan
            lines.append(f"{name:<14} {m.kind} {m.layers:>3} layers, hidden {m.hidden:>5}, "
                         f"seq {m.seq_len:>5}, batch {w.training.global_batch:>4}; "
                         f"tp {p.tp} pp {p.pp} dp {p.dp}; {w.defaults.cluster}"
                         + (f" x {w.defaults.devices}" if w.defaults.devices else ""))
    print("\n".join(lines))
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    kind = _kind_of(args.name)
    if kind == "workload":
        from ..hardware.catalog import resolve_device
        from ..plan.layout import resolve

        workload, cluster = _workload_and_cluster(args.name, args.cluster, args.set_items)
        plan, cluster = resolve(workload, cluster)
        device = resolve_device(cluster.device, "device", cluster.file)
        doc = workload.model_dump(mode="json", by_alias=True)
        doc["resolved"] = {
            "cluster": cluster.name, "device": device.name, "nodes": cluster.nodes,
            "devices": plan.world,
            "dp": plan.dp, "micro_batches": plan.micro_batches,
            "stage_layers": list(plan.stage_layers),
        }
        print(f"# {workload.file}\n" + _yaml(doc), end="")
    elif kind == "cluster":
        from ..config import load_cluster
        from ..hardware.catalog import resolve_device, resolve_link
        from ..plan.limits import check_cluster

        cluster = load_cluster(args.name, _cluster_overrides(args.set_items))
        check_cluster(cluster)
        for part in ("intra", "inter", "host"):  # unknown link names: say so here too
            resolve_link(getattr(cluster, part).link, f"{part}.link", cluster.file)
        doc = cluster.model_dump(mode="json", by_alias=True, exclude_none=True)
        doc["resolved_device"] = resolve_device(cluster.device, "device", cluster.file) \
            .model_dump(mode="json", by_alias=True)
        print(f"# {cluster.file}\n" + _yaml(doc), end="")
    else:
        from ..config import DeviceSpec, apply_overrides, validate
        from ..hardware.catalog import get_device

        source = "catalog/devices.yaml"
        device = get_device(args.name)
        if args.set_items:
            raw = device.model_dump(mode="json", by_alias=True)
            device = validate(DeviceSpec, apply_overrides(
                raw, _cluster_overrides(args.set_items), source), source)
        print(f"# {source}\n" + _yaml(device.model_dump(mode="json", by_alias=True)), end="")
    return 0


def _fmt_describe(value: Any, key: str = "") -> str:
    if isinstance(value, float) and key.endswith("_bytes_per_s"):
        return f"{value / 1e9:,.1f} GB/s"
    if isinstance(value, float) and key.endswith("_s"):
        return f"{value * 1e6:,.2f} us"
    if isinstance(value, float):
        return f"{value:,.6g}"
    return str(value)


def _print_mapping(data: dict, indent: int = 0) -> list[str]:
    """Indented ``key: value`` lines; rates in GB/s, times in us."""
    pad = "  " * indent
    out: list[str] = []
    for key, value in data.items():
        if isinstance(value, dict):
            out.append(f"{pad}{key}:")
            out.extend(_print_mapping(value, indent + 1))
        elif isinstance(value, (list, tuple)) and any(isinstance(v, dict) for v in value):
            out.append(f"{pad}{key}:")  # one line per item, e.g. per link class
            for item in value:
                fields = item.items() if isinstance(item, dict) else [("", item)]
                out.append(f"{pad}  - " + ", ".join(
                    f"{k}: {_fmt_describe(v, str(k))}" if k != "" else str(v)
                    for k, v in fields))
        elif isinstance(value, (list, tuple)):
            out.append(f"{pad}{key}: {', '.join(_fmt_describe(v, str(key)) for v in value)}")
        else:
            out.append(f"{pad}{key}: {_fmt_describe(value, str(key))}")
    return out


def _cmd_topo(args: argparse.Namespace) -> int:
    from ..config import load_cluster
    from ..plan.limits import check_cluster
    from ..net.build import build_topology

    cluster = load_cluster(args.cluster, _cluster_overrides(args.set_items))
    if cluster.nodes == "auto":  # a topology needs a size; one node unless --set
        cluster = cluster.model_copy(update={"nodes": 1})
    check_cluster(cluster)  # refuse a billion-device graph before building it
    topo = build_topology(cluster)
    lines = [f"# {cluster.file}", *_print_mapping(topo.describe())]
    n = topo.num_devices
    a, b = args.route if args.route else (0, n - 1)
    for dev in (a, b):
        if not 0 <= dev < n:
            raise ConfigError("--route", None, f"device {dev} out of range: expected 0 to "
                              f"{n - 1} ({n} devices)")
    hops = topo.route(a, b)
    lines.append(f"route {a} -> {b}: {len(hops)} hops, bottleneck "
                 f"{topo.route_bandwidth_bytes_per_s(a, b) / 1e9:,.1f} GB/s, latency "
                 f"{topo.route_latency_s(a, b) * 1e6:,.2f} us")
    print("\n".join(lines))
    return 0


def _cmd_roofline(args: argparse.Namespace) -> int:
    from ..model import roofline
    from ..hardware.catalog import resolve_device

    items = list(args.set_items)
    if args.device:
        items.insert(0, f"cluster.device={args.device}")
    workload, cluster = _workload_and_cluster(args.workload, None, items)
    device = resolve_device(cluster.device, "device", cluster.file)
    if args.plot:  # issue 6
        from ..studies.plots import check_plot_path
        check_plot_path(args.plot)
    rows = roofline.roofline_rows(workload, device, args.mode)
    if args.plot:  # before printing, so '| head' cannot stop the image being written
        from ..studies.plots import plot_for_roofline
        plot_for_roofline(args.plot, rows, device)
    print(roofline.render(rows))
    return 0


def _deferred(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    """The command ``simwall.<module>.<name>(args)``, its module imported only when the
    command runs (so ``simwall --help`` and the other commands stay fast)."""
    def run(args: argparse.Namespace) -> int:
        return getattr(importlib.import_module(f"simwall.{module}"), name)(args)
    return run


_COMMANDS = {"run": _cmd_run, "list": _cmd_list, "show": _cmd_show, "topo": _cmd_topo,
             "roofline": _cmd_roofline, "sweep": _deferred("studies.sweeps", "sweep_main"),
             "plan": _deferred("studies.search", "plan_main"),
             "check": _deferred("studies.search", "check_main"),
             "whatif": _deferred("studies.whatif", "whatif_main"),
             "plot": _deferred("studies.plots", "plot_main"),
             "validate": _deferred("studies.validate", "validate_main")}


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``simwall`` with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except _UsageError as err:
        print(f"simwall: error: {_one_line(err)} (see 'simwall --help')", file=sys.stderr)
        return 2
    except SystemExit as exit_:  # --help / --version print and exit 0
        return exit_.code if isinstance(exit_.code, int) else 0
    try:
        return _COMMANDS[args.command](args)
    except SimwallError as err:
        print(f"simwall: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. 'simwall list devices | head -1'
        sys.stderr.close()
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
