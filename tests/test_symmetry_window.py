"""The symmetry window (simwall.net.collectives.symmetry_window): on a periodic fat-tree,
costing only the flows that leave a group's first two leaves gives the same time as
costing every flow, so symmetric runs do not grow with the data-parallel degree."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simwall.config import load_cluster
from simwall.net import build_topology, collectives
from simwall.net.collectives import collective_time_parts, symmetry_window


def fat_tree(nodes: int, radix: int, oversubscription: float, rail: bool,
             per_node: int = 4):
    spec = load_cluster("dgx-a100", [("nodes", nodes), ("devices_per_node", per_node),
                                     ("inter.nics_per_node", per_node),
                                     ("inter.switch_radix", radix),
                                     ("inter.oversubscription", oversubscription),
                                     ("inter.rail_optimized", rail)])
    return build_topology(spec)


def dp_groups(topo, per_node: int, members: int, stride_nodes: int, ranks: int):
    """``ranks`` translated groups (one per local index) of ``members`` devices, one every
    ``stride_nodes`` nodes: the DP groups of a stage."""
    return [[(m * stride_nodes) * per_node + r for m in range(members)]
            for r in range(ranks)]


@settings(deadline=None, derandomize=True, max_examples=80)
@given(members=st.integers(8, 48), stride=st.sampled_from([1, 2, 3]),
       radix=st.sampled_from([4, 6, 8]), over=st.sampled_from([1.0, 2.0]),
       rail=st.booleans(), ranks=st.sampled_from([1, 2, 4]),
       kind=st.sampled_from(["all_reduce", "reduce_scatter", "all_gather"]),
       algorithm=st.sampled_from(["ring", "tree", "hierarchical"]))
def test_window_matches_full_costing(members, stride, radix, over, rail, ranks, kind,
                                     algorithm):
    per_node = 4
    topo = fat_tree(members * stride, radix, over, rail, per_node)
    groups = dp_groups(topo, per_node, members, stride, ranks)
    window = symmetry_window(groups[0], topo)
    full = collective_time_parts(topo, kind, groups, 1e8, algorithm)
    windowed = collective_time_parts(topo, kind, groups, 1e8, algorithm, window=window)
    assert windowed[0] == pytest.approx(full[0], rel=1e-9)        # latency
    assert windowed[1] == pytest.approx(full[1], rel=1e-2)        # bandwidth, 1%


@pytest.mark.parametrize("algorithm", ["ring", "tree", "hierarchical"])
@pytest.mark.parametrize("nodes,radix,over,rail", [(40, 8, 2.0, True), (40, 8, 2.0, False),
                                                   (60, 6, 1.0, False), (48, 8, 1.0, True)])
def test_window_applies_and_matches(nodes, radix, over, rail, algorithm):
    topo = fat_tree(nodes, radix, over, rail)
    groups = dp_groups(topo, 4, nodes, 1, 4)
    window = symmetry_window(groups[0], topo)
    assert window is not None and len(window) < nodes
    for kind in ("all_reduce", "reduce_scatter"):
        full = collective_time_parts(topo, kind, groups, 1e8, algorithm)
        windowed = collective_time_parts(topo, kind, groups, 1e8, algorithm, window=window)
        assert windowed[0] == pytest.approx(full[0], rel=1e-9)
        assert windowed[1] == pytest.approx(full[1], rel=1e-2)


def test_window_only_on_groups_spanning_many_leaves():
    topo = fat_tree(64, 8, 1.0, True)              # 4 nodes per leaf
    per_leaf = topo.block_nodes()
    assert per_leaf == 4
    small = [n * 4 for n in range(3 * per_leaf)]   # 3 leaves: costed in full
    assert symmetry_window(small, topo) is None
    big = [n * 4 for n in range(64)]               # 16 leaves: first two kept
    assert symmetry_window(big, topo) == frozenset(range(2 * per_leaf))


def test_no_window_where_the_network_is_not_periodic():
    # A partial last leaf behind oversubscribed uplinks, a failed link, a torus.
    assert fat_tree(18, 8, 2.0, True).block_nodes() is None
    assert fat_tree(15, 8, 2.0, True).block_nodes() == 5     # radix 8 at 2:1: 5 down
    spec = load_cluster("dgx-a100", [("nodes", 16), ("faults.links",
                                                      [{"between": ["nic0.0", "leaf0.0"],
                                                        "bandwidth_factor": 0.5}])])
    assert build_topology(spec).block_nodes() is None
    assert build_topology(load_cluster("tpu-v4", [("nodes", 16)])).block_nodes() is None


def test_symmetric_cost_flat_in_data_parallel_degree():
    """The flows put on the network for a DP group stop growing once it spans four
    leaves: 16x the members, the same windowed flow count."""
    counts = []
    for members in (16, 256):
        topo = fat_tree(members, 8, 1.0, True)
        group = [n * 4 for n in range(members)]
        window = symmetry_window(group, topo)
        phases = collectives.collective_phases("all_reduce", group, 1e8, topo, "ring",
                                               window)
        counts.append(sum(len(p.flows) for p in phases))
    assert counts[0] == counts[1] == 8


@pytest.mark.parametrize("rail, nics, groups", [
    (True, 8, 1),     # one group per rail, rails disjoint: costed once
    (False, 8, 8),    # all rails share each leaf's uplinks: every group costed
    (True, 4, 8),     # two local ranks per NIC: groups t and t + 4 share a rail
])
def test_data_parallel_copies_on_other_rails_are_costed_once(rail, nics, groups):
    """TP 8 fills a node, so the DP groups of a stage (one per TP rank) visit the same
    nodes one device each. On a rail-optimised fat-tree with a NIC per device they
    share no link and stand for each other; otherwise each is put on the network.
    Either way symmetric and per-device runs agree."""
    from simwall.api import prepare, simulate
    from simwall.costing.groups import near_groups

    over = {"cluster.nodes": 16, "cluster.inter.switch_radix": 8,
            "cluster.inter.rail_optimized": rail, "cluster.inter.nics_per_node": nics,
            "plan.tp": 8, "plan.pp": 2, "training.global_batch": 64}
    prep = prepare("bert-large", "dgx-a100", over)
    near = near_groups(prep.plan, 0, "dp", prep.topology)
    assert len(near) == groups
    assert near[0] == tuple(prep.plan.device_of(0, d, 0) for d in range(prep.plan.dp))
    sym = simulate("bert-large", "dgx-a100", **over)
    per = simulate("bert-large", "dgx-a100", per_device=True, **over)
    assert sym.step_time_s == pytest.approx(per.step_time_s, rel=0.01)
    assert sym.critical["busiest_link"]["busy_s"] == pytest.approx(
        per.critical["busiest_link"]["busy_s"], rel=0.01)
