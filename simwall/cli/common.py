"""What several ``simwall`` commands share: the ``--set`` option, loading a workload and
its cluster from the command line, and YAML output."""

from __future__ import annotations

import argparse
from typing import Any

import yaml

from ..config import (
    ClusterSpec,
    Workload,
    load_cluster,
    load_workload,
    set_overrides,
    split_key_overrides,
)

__all__ = ["CLUSTER_SET_HELP", "SET_HELP", "add_set_option", "add_workload_arguments", "to_yaml",
           "workload_and_cluster"]

#: Help of ``--set`` on the commands about one run (run, show, topo, roofline).
SET_HELP = ("override one key (YAML value), e.g. plan.tp=4 or cluster.nodes=8; repeatable; "
            "cluster.* keys go to the cluster")

#: Help of ``--set`` on the commands about a cluster alone (topo, collective), which take
#: cluster keys only.
CLUSTER_SET_HELP = ("override one cluster key (YAML value), e.g. cluster.nodes=2 (the "
                    "'cluster.' prefix is optional); repeatable")


def add_set_option(p: argparse.ArgumentParser, help: str = SET_HELP) -> None:
    """``--set KEY=VALUE`` (repeatable) into ``args.set_items``."""
    p.add_argument("--set", dest="set_items", action="append", default=[], metavar="KEY=VALUE",
                   help=help)


def add_workload_arguments(p: argparse.ArgumentParser) -> None:
    """WORKLOAD, ``--cluster`` and ``--set``: the inputs of ``simwall plan`` and ``check``."""
    p.add_argument("workload", help="bundled workload name or YAML path")
    p.add_argument("--cluster", help="bundled cluster name or YAML path "
                   "(default: the workload's defaults.cluster)")
    add_set_option(p, "override one key, e.g. cluster.nodes=4; repeatable")


def workload_and_cluster(name: str, cluster_name: str | None, items: list[str]
                         ) -> tuple[Workload, ClusterSpec]:
    """(workload, cluster) loaded with the ``--set`` ``items`` split between them; the
    cluster is the workload's default one unless ``cluster_name`` is given."""
    from ..engine.prepare import load_default_cluster  # not at import: --help stays light

    w_over, c_over = split_key_overrides(set_overrides(items))
    workload = load_workload(name, w_over)
    if cluster_name:
        return workload, load_cluster(cluster_name, c_over)
    return workload, load_default_cluster(workload, c_over)


def to_yaml(data: Any) -> str:
    """Block-style YAML, except lists of scalars, which stay on one line."""
    class Dumper(yaml.SafeDumper):
        pass

    def flow_list(dumper: yaml.SafeDumper, items: list) -> yaml.Node:
        flow = all(not isinstance(v, (dict, list)) for v in items)
        return dumper.represent_sequence("tag:yaml.org,2002:seq", items, flow_style=flow)

    Dumper.add_representer(list, flow_list)
    return yaml.dump(data, Dumper=Dumper, sort_keys=False, default_flow_style=False, width=100)
