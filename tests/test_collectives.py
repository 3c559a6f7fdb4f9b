"""Tests for simwall.net.collectives on small hand-built topologies (no generated topology)."""

from __future__ import annotations

import math
from itertools import pairwise

import networkx as nx
import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from simwall.errors import SimwallError
from simwall.net.collectives import (
    ALGORITHMS,
    KINDS,
    choose_algorithm,
    collective_phases,
    collective_time_parts,
    collective_time_s,
    double_binary_tree,
    representative_flows,
    ring_channels,
    run_phases,
)
from simwall.net.flows import FlowNetwork

PROPS = settings(deadline=None, derandomize=True, max_examples=25)


class FakeTopology:
    """The protocol collectives need, over a networkx DiGraph with unique routes."""

    def __init__(self, graph: nx.DiGraph, node_of: dict[int, int]) -> None:
        self.graph = graph
        self._node_of = node_of
        self.num_devices = len(node_of)

    def node_of(self, i: int) -> int:
        return self._node_of[i]

    def route(self, src: int, dst: int) -> tuple:
        if src == dst:
            return ()
        path = nx.shortest_path(self.graph, ("dev", src), ("dev", dst))
        return tuple(pairwise(path))

    def capacity(self, edge) -> float:
        return self.graph.edges[edge]["bandwidth_bytes_per_s"]

    def route_latency_s(self, src: int, dst: int) -> float:
        return sum(self.graph.edges[e]["latency_s"] for e in self.route(src, dst))


def _link(g, u, v, bw, lat):
    for a, b in ((u, v), (v, u)):
        g.add_edge(a, b, bandwidth_bytes_per_s=bw, latency_s=lat, link="test")


def cluster(nodes: int, per_node: int, nvl_bw: float = 100.0, nic_bw: float = 10.0,
            nvl_lat: float = 1.0, nic_lat: float = 10.0, shared_nic: bool = False):
    """Devices on a per-node switch (dev->sw->dev: 2 hops of nvl_lat/2); across nodes
    each device's own NIC (or one shared NIC per node) to a spine, 4 hops of nic_lat/4."""
    g = nx.DiGraph()
    for i in range(nodes * per_node):
        n = i // per_node
        _link(g, ("dev", i), ("sw", n), nvl_bw, nvl_lat / 2)
        nic = ("nic", n) if shared_nic else ("nic", i)
        if shared_nic:
            _link(g, ("sw", n), nic, nic_bw, nic_lat / 4)
        else:
            _link(g, ("dev", i), nic, nic_bw, nic_lat / 4)
        _link(g, nic, ("spine",), nic_bw, nic_lat / 4)
    return FakeTopology(g, {i: i // per_node for i in range(nodes * per_node)})


# --- hand-checkable costs ----------------------------------------------------------------

@PROPS
@given(st.integers(2, 12), st.floats(1.0, 1e9), st.floats(1.0, 1e3), st.floats(0.0, 1.0))
def test_ring_all_reduce_one_switch_is_thakur_formula(p, n_bytes, bw, lat):
    topo = cluster(1, p, nvl_bw=bw, nvl_lat=lat)
    latency_s, bandwidth_s = collective_time_parts(topo, "all_reduce", [list(range(p))],
                                                   n_bytes, "ring")
    # Thakur et al. 2005: 2(p-1) alpha + 2(p-1)/p * N / bw; alpha = route latency (2 hops).
    assert bandwidth_s == pytest.approx(2 * (p - 1) / p * n_bytes / bw, rel=1e-12)
    assert latency_s == pytest.approx(2 * (p - 1) * lat, rel=1e-12)


@pytest.mark.parametrize("kind", ["reduce_scatter", "all_gather"])
def test_ring_reduce_scatter_all_gather(kind):
    topo = cluster(1, 8, nvl_bw=50.0, nvl_lat=2.0)
    lat, bw = collective_time_parts(topo, kind, [list(range(8))], 800.0, "ring")
    assert bw == pytest.approx(7 / 8 * 800.0 / 50.0)
    assert lat == pytest.approx(7 * 2.0)


def test_ring_across_nodes_uses_one_channel_per_nic():
    # 2 nodes x 4 devices, N = 1600: every rank moves 2*7/8*N = 2800 B in 4 channels of
    # 700 B; each NIC carries one channel: 700 / 10 = 70 s (NVLink side: 3*700/100 = 21).
    topo = cluster(2, 4)
    assert len(ring_channels(range(8), topo)) == 4
    lat, bw = collective_time_parts(topo, "all_reduce", [list(range(8))], 1600.0, "ring")
    assert bw == pytest.approx(70.0)
    assert lat == pytest.approx(2 * 7 * 10.0)          # slowest hop is the NIC route


def test_hierarchical_is_three_phases():
    # 2 nodes x 4: intra RS 3/4*N/100, inter AR on N/4 among 2 rail peers
    # 2*(1/2)*(N/4)/10, intra AG 3/4*N/100. N = 1600: 12 + 40 + 12 = 64.
    topo = cluster(2, 4)
    phases = collective_phases("all_reduce", list(range(8)), 1600.0, topo, "hierarchical")
    assert len(phases) == 3
    lat, bw = collective_time_parts(topo, "all_reduce", [list(range(8))], 1600.0,
                                    "hierarchical")
    assert bw == pytest.approx(64.0)
    assert lat == pytest.approx(3 * 1.0 + 2 * 1 * 10.0 + 3 * 1.0)


def test_two_groups_sharing_one_link_get_half_each():
    # One NIC per node: groups {0,2} and {1,3} both cross it. Alone: N/bw; together 2N/bw.
    topo = cluster(2, 2, nvl_bw=1e6, shared_nic=True)
    alone = collective_time_parts(topo, "all_reduce", [[0, 2]], 100.0, "ring")[1]
    both = collective_time_parts(topo, "all_reduce", [[0, 2], [1, 3]], 100.0, "ring")[1]
    assert alone == pytest.approx(100.0 / 10.0)
    assert both == pytest.approx(2 * alone)
    # A weight of 2 on one group stands for two identical copies on the same links.
    weighted = collective_time_parts(topo, "all_reduce", [[0, 2]], 100.0, "ring",
                                     weights=[2.0])[1]
    assert weighted == pytest.approx(both)


def test_groups_on_disjoint_links_do_not_interfere():
    topo = cluster(2, 2)                                # one NIC per device
    alone = collective_time_s(topo, "all_reduce", [[0, 2]], 100.0, "ring")
    both = collective_time_s(topo, "all_reduce", [[0, 2], [1, 3]], 100.0, "ring")
    assert both == pytest.approx(alone)


def test_tree_two_and_four_nodes():
    topo = cluster(4, 1)
    # n = 2: each direction carries N/2 per tree, two trees: N / bw; latency up + down.
    lat, bw = collective_time_parts(topo, "all_reduce", [[0, 1]], 100.0, "tree")
    assert (lat, bw) == pytest.approx((2 * 10.0, 100.0 / 10.0))
    # n = 4: depth 2 in both trees -> latency 2 passes * 2 hops; bandwidth: an interior
    # rank sends N/2 up + 2 * N/2 down in one tree and N/2 up as a leaf in the other = 2N.
    lat, bw = collective_time_parts(topo, "all_reduce", [[0, 1, 2, 3]], 100.0, "tree")
    assert lat == pytest.approx(2 * 2 * 10.0)
    assert bw == pytest.approx(2 * 100.0 / 10.0)


def test_send_recv_and_broadcast():
    topo = cluster(2, 1)
    assert collective_time_parts(topo, "send_recv", [[0, 1]], 50.0) == \
        pytest.approx((10.0, 5.0))
    topo = cluster(1, 4, nvl_bw=10.0, nvl_lat=1.0)
    # Pipelined chain: N / bw after p-1 hops to fill.
    assert collective_time_parts(topo, "broadcast", [[0, 1, 2, 3]], 50.0, "ring") == \
        pytest.approx((3.0, 5.0))
    # Direct broadcast: the root's uplink carries 3 copies.
    assert collective_time_parts(topo, "broadcast", [[0, 1, 2, 3]], 50.0, "direct") == \
        pytest.approx((1.0, 15.0))


def test_unsupported_combinations_fall_back_to_ring():
    topo = cluster(2, 2)
    for kind, group, algo in [("reduce_scatter", [0, 1, 2, 3], "tree"),
                              ("all_gather", [0, 1, 2, 3], "tree"),
                              ("all_reduce", [0, 1, 2], "hierarchical"),
                              ("broadcast", [0, 1, 2, 3], "hierarchical")]:
        assert collective_phases(kind, group, 100.0, topo, algo) == \
            collective_phases(kind, group, 100.0, topo, "ring")


def test_trivial_cases_cost_nothing():
    topo = cluster(1, 4)
    assert collective_time_s(topo, "all_reduce", [[2]], 1e6) == 0.0
    assert collective_time_s(topo, "all_reduce", [[0, 1]], 0.0) == 0.0
    assert collective_time_s(topo, "all_reduce", [], 1e6) == 0.0


def test_bad_requests_raise():
    topo = cluster(2, 2)
    with pytest.raises(SimwallError):
        collective_time_s(topo, "all_to_none", [[0, 1]], 1.0)
    with pytest.raises(SimwallError):
        collective_time_s(topo, "all_reduce", [[0, 1]], 1.0, "bogus")
    with pytest.raises(SimwallError):
        collective_time_s(topo, "send_recv", [[0, 1, 2]], 1.0)
    with pytest.raises(SimwallError):
        collective_time_s(topo, "all_reduce", [[0, 0]], 1.0)


# --- structure ---------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13, 16, 24, 64])
def test_double_binary_tree_shape(n):
    for parents in double_binary_tree(n):
        assert parents.count(-1) == 1
        for r in range(n):                                  # reaches the root, shallow
            depth, x = 0, r
            while parents[x] != -1:
                x, depth = parents[x], depth + 1
                assert depth <= math.ceil(math.log2(n)) + 1
    if n % 2 == 0 and n > 2:
        a, b = double_binary_tree(n)
        interior_a = {p for p in a if p != -1}
        interior_b = {p for p in b if p != -1}
        assert not interior_a & interior_b                 # a rank is a leaf in one tree


def test_phase_bytes_add_up():
    topo = cluster(2, 4)
    (ring,) = collective_phases("all_reduce", list(range(8)), 800.0, topo, "ring")
    assert sum(b for _, _, b in ring.flows) == pytest.approx(8 * 2 * 7 / 8 * 800.0)
    (direct,) = collective_phases("all_gather", list(range(4)), 800.0, topo, "direct")
    assert len(direct.flows) == 12
    assert sum(b for _, _, b in direct.flows) == pytest.approx(4 * 3 / 4 * 800.0)


def test_representative_flows_merges_identical():
    merged = representative_flows([(0, 1, 5.0), (1, 2, 5.0), (0, 1, 5.0), (0, 1, 4.0)])
    assert merged == [((0, 1, 5.0), 2.0), ((1, 2, 5.0), 1.0), ((0, 1, 4.0), 1.0)]


# --- algorithm choice ----------------------------------------------------------------------

def test_choose_algorithm():
    one_node = cluster(1, 8)
    assert choose_algorithm("all_reduce", list(range(8)), 1e9, one_node) == "ring"
    assert choose_algorithm("send_recv", [0, 1], 1e9, one_node) == "direct"
    nodes = cluster(8, 1)
    # Latency-bound: tree's 2*log2 depth beats the ring's 2(p-1) steps.
    assert choose_algorithm("all_reduce", list(range(8)), 1.0, nodes) == "tree"
    assert choose_algorithm("all_reduce", list(range(8)), 1e9, nodes) == "ring"
    eight_by_four = cluster(8, 4)
    g = list(range(32))
    # Small: tree (latency 2*(3*1 + 3*10) = 66 s vs ring 2*31*10 = 620 s); large: ring
    # (bandwidth 2*31/32*N/4/10 vs tree's 2N/4/10; NCCL's ring/tree crossover).
    assert choose_algorithm("all_reduce", g, 1.0, eight_by_four) == "tree"
    assert choose_algorithm("all_reduce", g, 1e6, eight_by_four) == "ring"
    # All-gather has no tree: hierarchical's (4-1)*1 + (8-1)*10 s beats the ring's 31*10.
    assert choose_algorithm("all_gather", g, 1.0, eight_by_four) == "hierarchical"


@PROPS
@given(st.tuples(st.integers(1, 4), st.integers(1, 4)),
       st.sampled_from(["all_reduce", "reduce_scatter", "all_gather", "broadcast"]),
       st.floats(1.0, 1e6))
def test_choice_is_the_fastest_candidate(shape, kind, n_bytes):
    topo = cluster(*shape)
    g = list(range(shape[0] * shape[1]))
    best = collective_time_s(topo, kind, [g], n_bytes, "auto")
    for algo in ("ring", "tree", "hierarchical"):
        try:
            other = collective_time_s(topo, kind, [g], n_bytes, algo)
        except SimwallError:
            continue
        if algo != "tree" or (kind == "all_reduce" and shape[0] > 1):
            assert best <= other


# --- properties -------------------------------------------------------------------------

topologies = st.tuples(st.integers(1, 4), st.integers(1, 4))
kinds = st.sampled_from(["all_reduce", "reduce_scatter", "all_gather", "broadcast"])
algos = st.sampled_from(["auto", "ring", "hierarchical", "direct"])


@PROPS
@given(topologies, kinds, algos, st.floats(1.0, 1e6), st.floats(1.0, 10.0))
def test_time_monotone_in_bytes(shape, kind, algo, n_bytes, factor):
    topo = cluster(*shape)
    g = list(range(shape[0] * shape[1]))
    t1 = collective_time_s(topo, kind, [g], n_bytes, algo)
    t2 = collective_time_s(topo, kind, [g], n_bytes * factor, algo)
    assert t2 >= t1


@PROPS
@given(topologies, kinds, algos, st.floats(1.0, 1e6), st.floats(1.0, 8.0),
       st.booleans())
def test_more_bandwidth_never_slower(shape, kind, algo, n_bytes, factor, which):
    g = list(range(shape[0] * shape[1]))
    slow = cluster(*shape)
    fast = cluster(*shape, nvl_bw=100.0 * (factor if which else 1.0),
                   nic_bw=10.0 * (1.0 if which else factor))
    assert collective_time_s(fast, kind, [g], n_bytes, algo) <= \
        collective_time_s(slow, kind, [g], n_bytes, algo) * (1 + 1e-12)


def test_deterministic_and_memoised():
    topo = cluster(4, 4)
    groups = [[0, 4, 8, 12], [1, 5, 9, 13]]
    a = collective_time_parts(topo, "all_reduce", groups, 1e6, "ring")
    b = collective_time_parts(cluster(4, 4), "all_reduce", groups, 1e6, "ring")
    assert a == b                                            # bit-for-bit, fresh topology
    assert collective_time_parts(topo, "all_reduce", groups, 1e6, "ring") is a


def test_1536_devices_memoised():
    # 192 nodes x 8: the 8 rail-aligned data-parallel groups of 192 and 192 TP groups.
    # (Speed is measured in benchmarks/bench_engine.py, not here.)
    topo = cluster(192, 8)
    dp = [[n * 8 + j for n in range(192)] for j in range(8)]
    tp = [list(range(n * 8, n * 8 + 8)) for n in range(192)]
    for groups in (dp, tp):
        first = collective_time_parts(topo, "all_reduce", groups, 1e9, "ring")
        assert 0.0 < sum(first) < math.inf
        assert collective_time_parts(topo, "all_reduce", groups, 1e9, "ring") is first


def test_registry_lists_every_algorithm():
    assert sorted(ALGORITHMS) == ["direct", "hierarchical", "nvls", "ring", "tree"]
    assert set(KINDS) == {"all_reduce", "reduce_scatter", "all_gather", "broadcast",
                          "send_recv", "all_to_all"}


@pytest.mark.parametrize("algo", ["ring", "tree", "hierarchical", "direct"])
def test_flow_network_run_matches_static_time(algo):
    topo = cluster(2, 4)
    g = list(range(8))
    phases = collective_phases("all_reduce", g, 1600.0, topo, algo)
    env = simpy.Environment()
    net = FlowNetwork(env, topo.capacity)
    env.process(run_phases(env, net, topo, phases))
    env.run()
    assert env.now == pytest.approx(collective_time_s(topo, "all_reduce", [g], 1600.0, algo),
                                    rel=1e-9)
    assert net.active_flows == 0


def test_auto_offers_nccls_algorithms_on_nccl_links():
    """On links NCCL's model prices (dgx-a100: NVLink and IB), auto compares NCCL's own
    algorithms: rings for all-gather and reduce-scatter (NCCL tuning.cc runs no other),
    ring and tree for all-reduce across nodes. simwall's hierarchical scheme is no
    longer a candidate there, but stays a choice of plan.collective; on links without
    an NCCL class (the fake cluster above) it still is one."""
    from simwall import api
    from simwall.net.collectives.chooser import candidates

    topo = api.prepare("llama2-7b", "dgx-a100", {"cluster.nodes": 4}).topology
    g = list(range(32))
    assert candidates("all_gather", g, topo) == ["ring"]
    assert candidates("reduce_scatter", g, topo) == ["ring"]
    assert candidates("all_reduce", g, topo) == ["ring", "tree"]
    assert choose_algorithm("all_gather", g, 1 << 20, topo) == "ring"
    assert collective_time_s(topo, "all_gather", [g], 1 << 20, "hierarchical") > 0.0
    assert "hierarchical" in candidates("all_gather", list(range(32)), cluster(8, 4))
