"""Groups translated by whole blocks of a periodic network are costed alike, bit for bit
(simwall.net.collectives.symmetry.block_translate), so a per-device costing chooses the
algorithm of each pipeline pair and DP group once per translation class."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from simwall.config import ClusterSpec, validate
from simwall.net import build_topology, collectives
from simwall.net.collectives import chooser, symmetry

KINDS = ("all_reduce", "reduce_scatter", "all_gather", "send_recv", "broadcast")


def cluster(nodes: int, inter: dict, per_node: int = 4, **extra) -> ClusterSpec:
    return validate(ClusterSpec, {
        "name": "t", "device": "H100-SXM5-80GB", "nodes": nodes, "devices_per_node": per_node,
        "intra": {"topology": "nvswitch", "link": "NVLink4"},
        "inter": {"link": "IB-NDR", "nics_per_node": per_node, **inter}, **extra}, "t.yaml")


PERIODIC = [
    {"topology": "fat_tree", "switch_radix": 8},
    {"topology": "fat_tree", "switch_radix": 8, "rail_optimized": True},
    {"topology": "fat_tree", "switch_radix": 6, "oversubscription": 2.0},
    {"topology": "fat_tree3", "switch_radix": 4},
    {"topology": "fat_tree3", "switch_radix": 4, "oversubscription": 2.0,
     "agg_oversubscription": 2.0, "rail_optimized": False},
]


def _periodic_devices(shape, nodes, kind, data, max_size, groups=1):
    """A periodic topology of ``shape`` on ``nodes`` nodes, its block step and ``groups``
    x group-size distinct devices drawn past the first block (two per group for
    send_recv); None where the topology declares no block shift."""
    topo = build_topology(cluster(nodes, shape))
    shift = symmetry.block_shift(topo)
    if shift is None:
        return None
    step, full = shift
    size = 2 if kind == "send_recv" else data.draw(st.integers(2, max_size))
    devs = data.draw(st.lists(st.integers(step, full - 1), min_size=size * groups,
                              max_size=size * groups, unique=True))
    return topo, step, size, devs


@settings(deadline=None, derandomize=True, max_examples=60)
@given(shape=st.sampled_from(PERIODIC), nodes=st.integers(12, 40),
       kind=st.sampled_from(KINDS), data=st.data())
def test_translated_group_costs_the_same_double(shape, nodes, kind, data):
    """choose() (algorithm, protocol, latency, bandwidth) of a group and of its block
    translate are equal, and the memoised choose_algorithm gives the group's own."""
    drawn = _periodic_devices(shape, nodes, kind, data, 8)
    if drawn is None:
        return
    topo, step, _size, devs = drawn
    moved = symmetry.block_translate(devs, topo)
    assert moved != tuple(devs) and min(moved) < step
    assert all((a - b) % step == 0 and a - b == devs[0] - moved[0]
               for a, b in zip(devs, moved))
    assert chooser.choose(kind, devs, 1e8, topo) == chooser.choose(kind, moved, 1e8, topo)
    assert chooser.choose_algorithm(kind, devs, 1e8, topo) == \
        chooser.choose(kind, devs, 1e8, topo)[0]


def test_a_shift_by_less_than_a_block_can_change_the_cost():
    """The check above can fail: an all-to-all moved by part of a leaf straddles two
    leaves and crosses their oversubscribed uplinks, so its time differs;
    block_translate moves groups by whole blocks only."""
    topo = build_topology(cluster(24, {"topology": "fat_tree", "switch_radix": 6,
                                       "oversubscription": 4.0, "rail_optimized": True}))
    step = symmetry.block_shift(topo)[0]
    ring = tuple(range(0, step, 4))                # first device of each node of leaf 0
    assert len(ring) > 2
    costs = {chooser.choose("all_to_all", [d + j for d in ring], 1e8, topo)
             for j in range(0, step, 4)}
    assert len(costs) > 1
    assert symmetry.block_translate([d + step for d in ring], topo) == ring


def test_no_translation_without_a_declared_symmetry():
    degraded = cluster(24, {"topology": "fat_tree", "switch_radix": 8},
                       faults={"links": [{"between": ["dev3", "nic0.3"],
                                          "bandwidth_factor": 0.1}]})
    dragonfly = cluster(12, {"topology": "dragonfly", "router_nodes": 2, "group_routers": 2,
                             "global_links": 2})
    for spec in (degraded, dragonfly):
        topo = build_topology(spec)
        assert symmetry.block_shift(topo) is None
        assert symmetry.block_translate((40, 44), topo) == (40, 44)


def test_partial_last_block_is_not_moved():
    topo = build_topology(cluster(20, {"topology": "fat_tree", "switch_radix": 6,
                                       "rail_optimized": True}))   # leaves of 3 nodes
    step, full = symmetry.block_shift(topo)
    assert full < 20 * 4                    # the last leaf is partial
    assert symmetry.block_translate((full - 4, full), topo) == (full - 4, full)
    assert symmetry.block_translate((step, step + 4), topo) == (0, 4)


@settings(deadline=None, derandomize=True, max_examples=40)
@given(shape=st.sampled_from(PERIODIC), nodes=st.integers(12, 40),
       kind=st.sampled_from(("all_reduce", "reduce_scatter", "send_recv")),
       algorithm=st.sampled_from(("ring", "tree", "hierarchical", "direct")),
       data=st.data())
def test_groups_moved_together_cost_the_same_double(shape, nodes, kind, algorithm, data):
    """Several groups run at once and the same groups all moved by whole blocks: the
    same (latency, drain time) from the phases themselves (what the unit-time memo,
    keyed on the moved groups, relies on)."""
    from simwall.net.collectives.cost import algorithm_phases, phase_time_s
    count = data.draw(st.integers(1, 4))
    drawn = _periodic_devices(shape, nodes, kind, data, 6, count)
    if drawn is None:
        return
    topo, _step, size, devs = drawn
    groups = tuple(tuple(devs[i * size:(i + 1) * size]) for i in range(count))
    moved = collectives.block_translate_all(groups, topo)
    assert moved != groups

    def cost(gs):
        return phase_time_s([algorithm_phases(kind, g, 1.0, topo, algorithm) for g in gs],
                            [1.0] * len(gs), topo)

    assert cost(groups) == cost(moved)
