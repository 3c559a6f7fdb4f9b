"""Collective algorithms as phases of concurrent flows, and their time on a topology.

One module per algorithm (:mod:`.ring`, :mod:`.tree`, :mod:`.hierarchical`,
:mod:`.direct`), registered in :data:`simwall.registry.COLLECTIVE_ALGORITHMS`; shared
types in :mod:`.phases`; what they read of a topology, memoised, in :mod:`.routes`; the
time of named algorithms in :mod:`.cost`; the ``auto`` strategy in :mod:`.chooser`;
NCCL's protocol and latency model in :mod:`.protocol`; NVLink SHARP in :mod:`.nvls`; the
periodic symmetry window and block translations in :mod:`.symmetry`; the public entry in
:mod:`.timing`.
"""

from ...registry import COLLECTIVE_ALGORITHMS
from .chooser import candidates, choose, choose_algorithm
from .phases import KINDS, Flow, Phase, TopologyLike, Window
from .ring import ring_channels
from .symmetry import block_shift, block_translate, block_translate_all, symmetry_window
from .timing import (
    collective_choice,
    collective_flows,
    collective_phases,
    collective_time_parts,
    collective_time_s,
    representative_flows,
    run_phases,
)
from .tree import double_binary_tree

__all__ = [
    "ALGORITHMS",
    "KINDS",
    "Flow",
    "Phase",
    "TopologyLike",
    "Window",
    "block_shift",
    "block_translate",
    "block_translate_all",
    "candidates",
    "choose",
    "choose_algorithm",
    "collective_choice",
    "collective_flows",
    "collective_phases",
    "collective_time_parts",
    "collective_time_s",
    "double_binary_tree",
    "representative_flows",
    "ring_channels",
    "run_phases",
    "symmetry_window",
]

#: The algorithms by name (the registry; 'direct' is internal).
ALGORITHMS = COLLECTIVE_ALGORITHMS
