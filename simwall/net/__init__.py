"""The network: the cluster graph and its generators, max-min fair flows, collectives.

- :mod:`.names`: graph node names (``dev3``, ``nic0.2`` ...);
- :mod:`.generators`: one module per topology generator, with its symmetry traits;
- :mod:`.graph`: the graph from the generators (faults, connectivity);
- :mod:`.topology`: :class:`Topology`, routes and declared symmetry;
- :mod:`.build`: :func:`build_topology`, a cluster spec to a topology;
- :mod:`.flows`: max-min fair sharing, static and SimPy-driven;
- :mod:`.collectives`: collective algorithms and their time.
"""

from .build import build_topology
from .generators import GENERATORS, INTER_GENERATORS, INTRA_GENERATORS, Generator, GeneratorContext
from .names import node_name, parse_node_name
from .topology import Topology

__all__ = [
    "GENERATORS",
    "INTER_GENERATORS",
    "INTRA_GENERATORS",
    "Generator",
    "GeneratorContext",
    "Topology",
    "build_topology",
    "node_name",
    "parse_node_name",
]
