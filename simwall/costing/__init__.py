"""Costing: the durations of one training step's tasks, per pipeline stage, and the
traffic they put on the network (pure, no simpy).

One module per concern: :mod:`.groups` (device groups, symmetric placement),
:mod:`.traffic` (a collective costed together with its record), :mod:`.compute`,
:mod:`.tp`, :mod:`.pp`, :mod:`.dp`, :mod:`.zero`, :mod:`.optimizer`, :mod:`.offload`;
:mod:`.stage` composes them into a :class:`StageCost`; :mod:`.linkload` turns its
traffic into bytes per link.
"""

from .compute import op_times
from .dp import buckets
from .groups import costs_symmetrically, placement
from .linkload import busiest_link, link_bytes, step_busiest_link, step_link_bytes
from .stage import ChunkCost, StageCost, stage_cost
from .traffic import Traffic

__all__ = [
    "ChunkCost",
    "StageCost",
    "Traffic",
    "buckets",
    "busiest_link",
    "costs_symmetrically",
    "link_bytes",
    "op_times",
    "placement",
    "stage_cost",
    "step_busiest_link",
    "step_link_bytes",
]
