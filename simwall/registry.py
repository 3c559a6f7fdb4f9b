"""The extension points of simwall, one registry per kind.

Adding a pipeline schedule, a collective algorithm, a topology generator or an output
format is one new module plus one entry here: ``name -> "module:attribute"``. Entries are
imported on first use, so this module imports nothing of simwall and the config layer can
check a name the user wrote (``plan.schedule: zb``) against a registry without loading
the implementations. What an entry must be is said per registry below.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = [
    "COLLECTIVE_ALGORITHMS",
    "INTER_TOPOLOGIES",
    "INTRA_TOPOLOGIES",
    "OUTPUT_FORMATS",
    "SCHEDULES",
    "Registry",
]


class Registry(Mapping[str, Any]):
    """Names of one extension kind, each bound to ``"module:attribute"``; looking a name up
    imports its module (once) and returns the attribute."""

    def __init__(self, kind: str, entries: Mapping[str, str],
                 internal: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self._targets = dict(entries)
        self._internal = frozenset(internal)
        self._loaded: dict[str, Any] = {}
        self._lock = threading.Lock()

    def names(self) -> tuple[str, ...]:
        """The registered names, in registration order."""
        return tuple(self._targets)

    def choices(self) -> tuple[str, ...]:
        """The names a user may write in a file or on the command line: all but those
        registered as ``internal`` (used by simwall itself, e.g. point-to-point sends)."""
        return tuple(n for n in self._targets if n not in self._internal)

    def register(self, name: str, target: str, internal: bool = False) -> None:
        """Add (or rebind) ``name`` to ``"module:attribute"``, imported on first use."""
        with self._lock:
            self._targets[name] = target
            self._loaded.pop(name, None)
            self._internal = (self._internal | {name}) if internal else self._internal - {name}

    def unregister(self, name: str) -> None:
        """Forget ``name`` (KeyError if it is not registered)."""
        with self._lock:
            del self._targets[name]
            self._loaded.pop(name, None)
            self._internal = self._internal - {name}

    def __getitem__(self, name: str) -> Any:
        found = self._loaded.get(name)
        if found is not None:
            return found
        target = self._targets[name]            # KeyError for an unknown name, as a dict
        module, _, attribute = target.partition(":")
        with self._lock:
            found = getattr(importlib.import_module(module), attribute)
            self._loaded[name] = found
        return found

    def __contains__(self, name: object) -> bool:
        return name in self._targets

    def __iter__(self) -> Iterator[str]:
        return iter(self._targets)

    def __len__(self) -> int:
        return len(self._targets)


#: Pipeline schedules: ``tasks(pp, stage, m, v) -> tuple[Task, ...]``, one module each
#: under :mod:`simwall.plan.schedules`.
SCHEDULES = Registry("pipeline schedule", {
    "gpipe": "simwall.plan.schedules.gpipe:tasks",
    "1f1b": "simwall.plan.schedules.one_f_one_b:tasks",
    "interleaved": "simwall.plan.schedules.interleaved:tasks",
    "zero_bubble": "simwall.plan.schedules.zero_bubble:tasks",
})

#: Collective algorithms: ``phases(kind, group, bytes_, topology, window, latency)
#: -> tuple[Phase, ...]`` (:mod:`simwall.net.collectives`, one module each).
#: ``plan.collective`` also accepts ``auto``.
COLLECTIVE_ALGORITHMS = Registry("collective algorithm", {
    "ring": "simwall.net.collectives.ring:ring_phases",
    "tree": "simwall.net.collectives.tree:tree_phases",
    "hierarchical": "simwall.net.collectives.hierarchical:hierarchical_phases",
    "direct": "simwall.net.collectives.direct:direct_phases",
    "nvls": "simwall.net.collectives.nvls:nvls_phases",
}, internal=("direct", "nvls"))

#: Topology generators inside a node (``intra.topology``): a
#: :class:`simwall.net.generators.Generator`, one module each.
INTRA_TOPOLOGIES = Registry("intra-node topology", {
    "nvswitch": "simwall.net.generators.intra_nvswitch:GENERATOR",
    "mesh": "simwall.net.generators.intra_mesh:GENERATOR",
    "ring": "simwall.net.generators.intra_ring:GENERATOR",
    "torus": "simwall.net.generators.intra_torus:GENERATOR",
    "none": "simwall.net.generators.intra_none:GENERATOR",
    "graph": "simwall.net.generators.explicit:INTRA_GENERATOR",
})

#: Topology generators across nodes (``inter.topology``): a
#: :class:`simwall.net.generators.Generator`, one module each.
INTER_TOPOLOGIES = Registry("inter-node topology", {
    "fat_tree": "simwall.net.generators.inter_fat_tree:GENERATOR",
    "torus": "simwall.net.generators.inter_torus:GENERATOR",
    "ring": "simwall.net.generators.inter_ring:GENERATOR",
    "none": "simwall.net.generators.inter_none:GENERATOR",
    "rail_only": "simwall.net.generators.inter_rail_only:GENERATOR",
    "fat_tree3": "simwall.net.generators.inter_fat_tree3:GENERATOR",
    "dragonfly": "simwall.net.generators.inter_dragonfly:GENERATOR",
    "multi_plane": "simwall.net.generators.inter_multi_plane:GENERATOR",
    "graph": "simwall.net.generators.explicit:INTER_GENERATOR",
})

#: Output formats of a step result (``simwall run --format``): ``render(result) -> str``,
#: one module of :mod:`simwall.report` each; :func:`simwall.report.render` looks them up.
OUTPUT_FORMATS = Registry("output format", {
    "table": "simwall.report.table:render",
    "json": "simwall.report.jsonview:render",
})
