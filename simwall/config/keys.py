"""Key-path overrides: ``--set KEY=VALUE`` items, the override dict the API takes, and its
split between the workload and the cluster.

One spelling everywhere: a key path such as ``plan.tp`` overrides the workload and one
that starts with ``cluster.`` (``cluster.nodes``) overrides the cluster, the prefix
removed. ``simwall.simulate(**overrides)``, ``search``, ``check``, ``whatif``, sweep files
and validation case files all take that dict; the CLI builds it from ``--set`` items with
:func:`set_overrides`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .core import parse_set

__all__ = ["CLUSTER_PREFIX", "cluster_overrides", "set_overrides", "split_key_overrides"]

#: Key paths under this prefix override the cluster (the prefix removed), the rest the
#: workload.
CLUSTER_PREFIX = "cluster."


def set_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``--set`` items (``KEY=VALUE``, YAML values) -> ``{key path: value}``, in the order
    written; a key given twice keeps its last value, at the place it was last written, so
    the dict applies as the items would one after the other. Bad syntax raises a
    ConfigError naming ``--set``."""
    out: dict[str, Any] = {}
    for item in items:
        key, value = parse_set(item)
        out.pop(key, None)
        out[key] = value
    return out


def split_key_overrides(overrides: Mapping[str, Any]
                        ) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
    """``{key path: value}`` -> (workload overrides, cluster overrides), each a list of
    (key path, value) in the dict's order; cluster keys lose their ``cluster.`` prefix."""
    workload: list[tuple[str, Any]] = []
    cluster: list[tuple[str, Any]] = []
    for key, value in overrides.items():
        if key.startswith(CLUSTER_PREFIX):
            cluster.append((key[len(CLUSTER_PREFIX):], value))
        else:
            workload.append((key, value))
    return workload, cluster


def cluster_overrides(overrides: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Overrides of a command about a cluster (or a device) alone, where every key is the
    cluster's and the ``cluster.`` prefix is optional: (key path, value) pairs."""
    return [(key.removeprefix(CLUSTER_PREFIX), value) for key, value in overrides.items()]
