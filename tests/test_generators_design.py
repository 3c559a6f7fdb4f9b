"""The generators architects compare (issue 19): rail-only, three-tier fat-tree,
dragonfly, and NVLink domains of any size; each against the whole graph and physics."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simwall import simulate
from simwall.config import ClusterSpec, load_cluster, validate
from simwall.errors import ConfigError
from simwall.hardware.catalog import get_link
from simwall.net import build_topology

_NDR_LINK = get_link("IB-NDR")
NDR = _NDR_LINK.bandwidth_bytes_per_s * _NDR_LINK.efficiency   # achievable per NIC


def cluster(nodes: int, inter: dict, per_node: int = 4, intra: str = "nvswitch"
            ) -> ClusterSpec:
    return validate(ClusterSpec, {
        "name": "t", "device": "H100-SXM5-80GB", "nodes": nodes, "devices_per_node": per_node,
        "intra": {"topology": intra, "link": "NVLink4"},
        "inter": {"link": "IB-NDR", "nics_per_node": per_node, **inter}}, "t.yaml")


SHAPES = st.sampled_from([
    {"topology": "rail_only"},
    {"topology": "fat_tree3", "switch_radix": 4},
    {"topology": "fat_tree3", "switch_radix": 4, "oversubscription": 2.0,
     "agg_oversubscription": 2.0, "rail_optimized": False},
    {"topology": "fat_tree3", "switch_radix": 6, "pod_leaves": 2, "agg_oversubscription": 3.0},
    {"topology": "dragonfly", "router_nodes": 1, "group_routers": 2, "global_links": 2},
    {"topology": "dragonfly", "router_nodes": 2, "group_routers": 2, "global_links": 1},
])


@settings(deadline=None, derandomize=True, max_examples=40)
@given(nodes=st.integers(1, 10), per_node=st.sampled_from([1, 2, 4]), inter=SHAPES)
def test_routes_are_paths_and_lazy_edges_match_the_graph(nodes, per_node, inter):
    """Every route is a connected path of graph edges from its source to its
    destination, and the edges read node by node are those of the whole graph."""
    try:
        c = cluster(nodes, inter, per_node)
        lazy = build_topology(c)
    except ConfigError as err:                 # a dragonfly too small for its groups
        assert "global_links" in str(err)
        return
    n = lazy.num_devices
    bottleneck = {(a, b): lazy.route_bandwidth_bytes_per_s(a, b)
                  for a in range(n) for b in range(n)}
    got = {e: dict(lazy.edge_attrs(e)) for e in build_topology(c).graph.edges}
    g = lazy.graph
    assert got == {e: g.edges[e] for e in g.edges}
    for a in range(n):
        for b in range(n):
            route = lazy.route(a, b)
            if a == b:
                assert route == ()
                continue
            assert route[0][0] == ("dev", a) and route[-1][1] == ("dev", b)
            assert all(x[1] == y[0] for x, y in pairwise(route))
            assert all(g.has_edge(*e) for e in route)
            assert bottleneck[(a, b)] == min(g.edges[e]["bandwidth_bytes_per_s"] *
                                             g.edges[e]["efficiency"] for e in route)


def test_rail_only_has_no_spine_and_changes_rail_over_nvlink():
    topo = build_topology(cluster(4, {"topology": "rail_only"}))
    assert not any(v[0] == "spine" for v in topo.graph)
    route = topo.route(0, 5)                 # rail 0 of node 0 to rail 1 of node 1
    assert route[:2] == ((("dev", 0), ("nvsw", 0)), (("nvsw", 0), ("dev", 1)))
    assert (("nic", 0, 1), ("leaf", 1, 0)) in route
    assert topo.rails_disjoint() and topo.shift_invariant(4)


def test_rail_only_needs_an_nvlink_domain():
    with pytest.raises(ConfigError, match="rail_only"):
        build_topology(cluster(2, {"topology": "rail_only"}, intra="none"))


def test_three_tier_bisection_follows_each_tiers_oversubscription():
    # radix 4: 2 nodes per leaf, 2 leaves per pod, 4 pods (16 nodes, 4 NICs each).
    full = build_topology(cluster(16, {"topology": "fat_tree3", "switch_radix": 4}))
    agg2 = build_topology(cluster(16, {"topology": "fat_tree3", "switch_radix": 4,
                                        "agg_oversubscription": 2.0}))
    both = build_topology(cluster(16, {"topology": "fat_tree3", "switch_radix": 4,
                                        "agg_oversubscription": 2.0,
                                        "oversubscription": 3.0}))
    half = 16 * 4 / 2 * _NDR_LINK.bandwidth_bytes_per_s   # every NIC of one half, raw rate
    assert full.bisection_bandwidth_bytes_per_s() == pytest.approx(half)
    assert agg2.bisection_bandwidth_bytes_per_s() == pytest.approx(half / 2)
    # Leaf oversubscription 3:1 also regroups the leaves (3 nodes each): only the order.
    assert both.bisection_bandwidth_bytes_per_s() < agg2.bisection_bandwidth_bytes_per_s()
    # Routes climb only as high as they must.
    assert len(full.route(0, 4)) == 4        # same leaf: dev nic leaf nic dev
    assert any(v[0] == "agg" for _, v in full.route(0, 8))
    assert not any(v[0] == "spine" for _, v in full.route(0, 8))   # same pod
    assert any(v[0] == "spine" for _, v in full.route(0, 63))


def test_dragonfly_minimal_routes_and_a_too_small_global_layer():
    c = cluster(8, {"topology": "dragonfly", "router_nodes": 1, "group_routers": 2,
                    "global_links": 2}, per_node=1)          # 4 groups of 2 routers
    topo = build_topology(c)
    for a in range(8):
        for b in range(8):
            routers = [v for _, v in topo.route(a, b) if v[0] == "rtr"]
            assert len(routers) <= 4          # source, (global), (global), destination
            assert len({r[1] for r in routers}) <= 2
    with pytest.raises(ConfigError, match="global_links"):
        build_topology(cluster(8, {"topology": "dragonfly", "router_nodes": 1,
                                   "group_routers": 1, "global_links": 1}, per_node=1))


@pytest.mark.parametrize("key, low, high", [
    ("cluster.inter.agg_oversubscription", 4.0, 1.0),
    ("cluster.inter.oversubscription", 4.0, 1.0),
])
def test_less_oversubscription_never_slows_a_step(key, low, high):
    over = {"cluster.nodes": 32, "cluster.inter.topology": "fat_tree3",
            "cluster.inter.switch_radix": 8, "plan.tp": 8, "plan.pp": 1}
    slow = simulate("llama2-7b", "dgx-a100", **over, **{key: low}).step_time_s
    fast = simulate("llama2-7b", "dgx-a100", **over, **{key: high}).step_time_s
    assert fast <= slow


def test_more_global_links_never_slow_a_dragonfly_step():
    over = {"cluster.nodes": 16, "cluster.inter.topology": "dragonfly",
            "cluster.inter.router_nodes": 1, "cluster.inter.group_routers": 4}
    few = simulate("llama2-7b", "dgx-a100", **over, **{"cluster.inter.global_links": 1})
    many = simulate("llama2-7b", "dgx-a100", **over, **{"cluster.inter.global_links": 4})
    assert many.step_time_s <= few.step_time_s


@pytest.mark.parametrize("per_node", [72, 144, 576])
def test_nvlink_domains_of_any_size(per_node):
    c = validate(ClusterSpec, {"name": "nvl", "device": "GB200", "nodes": 2,
                               "devices_per_node": per_node,
                               "intra": {"topology": "nvswitch", "link": "NVLink5"},
                               "inter": {"topology": "fat_tree", "link": "IB-NDR",
                                         "nics_per_node": per_node}}, "nvl.yaml")
    topo = build_topology(c)
    nvlink5 = get_link("NVLink5")                  # achievable: bandwidth x efficiency
    assert topo.route_bandwidth_bytes_per_s(0, per_node - 1) == \
        nvlink5.bandwidth_bytes_per_s * nvlink5.efficiency
    assert topo.route_bandwidth_bytes_per_s(0, per_node) == NDR
    assert math.isfinite(topo.route_latency_s(0, 2 * per_node - 1))


@pytest.mark.parametrize("radix, nodes", [(24, 16), (12, 16), (64, 16)])
def test_more_oversubscription_is_never_faster(radix, nodes):
    """A leaf's uplink is its up ports, also where whole nodes leave down ports unused or
    the last leaf is partly filled: raising the oversubscription never speeds a step."""
    import simwall

    steps = [simwall.simulate("llama2-7b", "dgx-h100", **{
        "cluster.nodes": nodes, "cluster.inter.switch_radix": radix,
        "cluster.inter.oversubscription": o, "cluster.inter.rail_optimized": False,
        "plan.tp": 8, "plan.zero": 3}).step_time_s for o in (1, 1.5, 2, 3, 5, 7)]
    assert steps == sorted(steps), steps


def test_a_dragonfly_group_has_no_more_global_channels_than_ports():
    """4 groups of 2 routers with 2 global ports each (a*h = 4 ports for 3 other groups):
    every group's global edges add up to at most a*h channels, and the wiring looks the
    same from every group (before, groups 1 and 2 got 5 channels)."""
    from simwall.net import build_topology

    cl = load_cluster("dgx-h100", [("nodes", 16), ("inter.topology", "dragonfly"),
                                   ("inter.router_nodes", 2), ("inter.group_routers", 2),
                                   ("inter.global_links", 2)])
    topo = build_topology(cl)
    width = topo.context.inter_link.bandwidth_bytes_per_s * topo.context.rails
    per_group: dict[int, float] = {}
    pairs: dict[int, set] = {}
    for u, v, d in topo.graph.edges(data=True):
        if u[0] == v[0] == "rtr" and u[1] != v[1]:
            per_group[u[1]] = per_group.get(u[1], 0.0) + d["bandwidth_bytes_per_s"] / width
            pairs.setdefault((v[1] - u[1]) % 4, set()).add(d["bandwidth_bytes_per_s"])
    assert sorted(per_group) == [0, 1, 2, 3]
    assert all(ch <= 2 * 2 for ch in per_group.values()), per_group
    assert all(len(bws) == 1 for bws in pairs.values()), pairs
