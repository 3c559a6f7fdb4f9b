"""Names of the cluster graph's nodes: tuples in the graph, strings in files and output.

Node names (tuples; ``str`` names in parentheses, as written in ``faults.links``):
``("dev", i)`` (``dev3`` or ``3``), ``("nvsw", node)`` (``nvsw0``), ``("nic", node, k)``
(``nic0.2``), ``("leaf", rail, j)`` (``leaf2.0``), ``("spine", 0)`` (``spine``),
``("host", node)`` (``host0``), ``("agg", rail, pod)`` (``agg0.1``: a pod's aggregation
switch of a three-tier fat-tree), ``("rtr", group, r)`` (``rtr3.1``: a dragonfly router).
A node of an explicit graph file with a name of its own is ``(kind, name)``, written as
its name.
"""

from __future__ import annotations

import re

__all__ = ["Edge", "Node", "device_node", "node_name", "parse_node_name"]

Node = tuple
Edge = tuple[Node, Node]

_NAME_RE = re.compile(r"^([a-z]*)(\d+(?:\.\d+)*)?$")
_NAME_ARITY = {"dev": 1, "nvsw": 1, "nic": 2, "leaf": 2, "spine": 1, "host": 1, "agg": 2,
               "rtr": 2}


def device_node(i: int) -> Node:
    """The graph node of device ``i``: ``("dev", i)``."""
    return ("dev", i)


def node_name(node: Node) -> str:
    """The string form of a graph node: ``("nic", 0, 2)`` -> ``"nic0.2"``."""
    if node == ("spine", 0):
        return "spine"
    if len(node) == 2 and isinstance(node[1], str):    # an explicit graph's own name
        return node[1]
    return node[0] + ".".join(str(p) for p in node[1:])


def parse_node_name(text: str) -> Node | None:
    """The graph node a name denotes (``"dev3"``, ``"3"``, ``"nic0.2"``), or None."""
    m = _NAME_RE.match(text.strip().lower())
    if not m:
        return None
    kind, nums = m.group(1) or "dev", m.group(2)
    parts = tuple(int(p) for p in nums.split(".")) if nums else ()
    if kind == "spine" and not parts:
        parts = (0,)
    if kind not in _NAME_ARITY or len(parts) != _NAME_ARITY[kind]:
        return None
    return (kind, *parts)
