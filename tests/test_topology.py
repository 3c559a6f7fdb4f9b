"""Topology graphs: hand-derived routes, bottlenecks and bisections; faults; determinism."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simwall.config import ClusterSpec, bundled_names, load_cluster, validate
from simwall.errors import ConfigError
from simwall.net import GENERATORS, build_topology, node_name, parse_node_name

# Usable bytes/s per direction: the catalog's raw bandwidth x its nccl-tests efficiency
# (NVLink3 300 GB/s x 0.775, IB-HDR 25 GB/s x 0.96; simwall/catalog/links.yaml).
NVLINK3 = 300e9 * 0.775
HDR = 25e9 * 0.96
HDR_RAW = 25e9    # bisection bandwidth counts raw link bandwidth


def cluster(doc: dict, source: str = "test-cluster.yaml") -> ClusterSpec:
    base = {"name": "t", "device": "A100-SXM4-80GB"}
    return validate(ClusterSpec, {**base, **doc}, source)


def dgx(nodes: int, **inter) -> ClusterSpec:
    return load_cluster("dgx-a100", [("nodes", nodes)] + [(f"inter.{k}", v)
                                                         for k, v in inter.items()])


def test_intra_node_bottleneck_is_nvlink():
    topo = build_topology(dgx(2))
    for a, b in [(0, 1), (3, 7), (8, 15)]:
        assert topo.route_bandwidth_bytes_per_s(a, b) == NVLINK3
        assert topo.route(a, b)[0][1] == ("nvsw", topo.node_of(a))


def test_inter_node_bottleneck_is_the_nic():
    topo = build_topology(dgx(2))
    # Same rail (local index 0 on both nodes): dev -> NIC -> leaf -> NIC -> dev.
    assert [u for u, _ in topo.route(0, 8)] == [("dev", 0), ("nic", 0, 0), ("leaf", 0, 0),
                                                ("nic", 1, 0)]
    assert topo.route_bandwidth_bytes_per_s(0, 8) == HDR
    # Different rails: over NVLink to dev 3 (rail 3) first, then the network (PXN).
    path = [u for u, _ in topo.route(0, 11)] + [("dev", 11)]
    assert path[:3] == [("dev", 0), ("nvsw", 0), ("dev", 3)]
    assert ("nic", 0, 3) in path and ("spine", 0) not in path
    assert topo.route_bandwidth_bytes_per_s(0, 11) == HDR
    # Latency: NVLink hop (0.47 us) + one network hop (2.7 us), NCCL tuning constants.
    assert topo.route_latency_s(0, 11) == pytest.approx(0.47e-6 + 2.7e-6)
    assert topo.route_latency_s(0, 8) == pytest.approx(2.7e-6)


def test_link_efficiency_scales_usable_capacity():
    full = build_topology(dgx(2))
    spec = load_cluster("dgx-a100", [("nodes", 2),
                                     ("inter.link", {"base": "IB-HDR", "efficiency": 0.5})])
    half = build_topology(spec)
    assert half.route_bandwidth_bytes_per_s(0, 8) == pytest.approx(HDR_RAW / 2)
    assert half.route_bandwidth_bytes_per_s(0, 1) == full.route_bandwidth_bytes_per_s(0, 1)
    # describe() reports the raw hardware figure.
    nic = [link for link in half.describe()["links"] if link["kind"] == "nic"]
    assert nic and nic[0]["bandwidth_bytes_per_s"] == HDR_RAW


def test_route_is_a_connected_path():
    topo = build_topology(dgx(4, switch_radix=4))
    for a, b in [(0, 31), (5, 18), (9, 9), (30, 2)]:
        edges = topo.route(a, b)
        if a == b:
            assert edges == () and topo.route_latency_s(a, b) == 0.0
            continue
        assert edges[0][0] == ("dev", a) and edges[-1][1] == ("dev", b)
        assert all(e1[1] == e2[0] for e1, e2 in pairwise(edges))
        assert all(topo.graph.has_edge(*e) for e in edges)


def test_torus_4x4_bisection():
    # 4 x 4 torus (row-major: device i at (i // 4, i % 4)). Index halves = rows {0, 1} vs
    # {2, 3}. Links crossing: row1-row2 (4 links) + wrap-around row3-row0 (4 links) =
    # 2 * k = 8 links, each 50 GB/s per direction (ICI-v4) -> 400 GB/s one way.
    c = cluster({"device": "TPU-v4", "nodes": 4, "devices_per_node": 4,
                 "intra": {"topology": "none", "link": "ICI-v4"},
                 "inter": {"topology": "torus", "link": "ICI-v4", "dims": [4, 4]}})
    topo = build_topology(c)
    assert topo.bisection_bandwidth_bytes_per_s() == pytest.approx(8 * 50e9)
    # Dimension-order routing, shorter way round: (0,0) -> (3,3) goes -1 in both dims.
    assert [u for u, _ in topo.route(0, 15)] == [("dev", 0), ("dev", 12)]
    assert len(topo.route(0, 10)) == 4  # (0,0) -> (2,2): two hops in each dimension


def test_fat_tree_2to1_bisection():
    # 4 nodes x 1 device x 1 NIC; radix-4 leaves with 2:1 oversubscription use
    # floor(4 * 2 / 3) = 2 down ports -> 2 nodes per leaf, 2 leaves. Each leaf's uplink =
    # downlink (2 x 25 GB/s) / 2 = 25 GB/s. Halves {0, 1} | {2, 3} sit on different leaves,
    # so the cut is one leaf uplink: 25 GB/s. Without oversubscription: 50 GB/s.
    doc = {"nodes": 4, "devices_per_node": 1,
           "intra": {"topology": "none"},
           "inter": {"topology": "fat_tree", "link": "IB-HDR", "nics_per_node": 1,
                     "switch_radix": 4, "oversubscription": 2.0}}
    assert build_topology(cluster(doc)).bisection_bandwidth_bytes_per_s() == pytest.approx(HDR_RAW)
    doc["inter"] = {**doc["inter"], "oversubscription": 1.0}
    assert build_topology(cluster(doc)).bisection_bandwidth_bytes_per_s() == pytest.approx(2 * HDR_RAW)


def test_rail_optimised_dgx_bisection():
    # 4 DGX nodes, radix 4, no oversubscription: 2 nodes per rail leaf, 8 rails x 2 leaves.
    # Nodes {0, 1} | {2, 3}: each rail's leaf 0 sends through its 2 x 25 GB/s uplink:
    # 8 rails x 50 GB/s = 400 GB/s = 16 NICs x 25 GB/s (full bisection).
    assert build_topology(dgx(4, switch_radix=4)).bisection_bandwidth_bytes_per_s() == \
        pytest.approx(16 * HDR_RAW)
    # 2:1 halves it.
    topo = build_topology(dgx(4, switch_radix=4, oversubscription=2.0))
    assert topo.bisection_bandwidth_bytes_per_s() == pytest.approx(8 * HDR_RAW)


def test_non_rail_optimised_uses_one_leaf_group():
    topo = build_topology(dgx(2, rail_optimized=False))
    path = [u for u, _ in topo.route(0, 11)]
    assert ("leaf", 0, 0) in path and ("nic", 0, 0) in path


def test_failed_link_that_cuts_a_device_off():
    c = load_cluster("single-node", [("faults.links", [
        {"between": ["dev3", "nvsw0"], "bandwidth_factor": 0.0}])])
    with pytest.raises(ConfigError) as exc:
        build_topology(c)
    assert exc.value.key == "faults.links" and "dev3" in exc.value.message
    assert exc.value.source.endswith("single-node.yaml")


def test_degraded_link_scales_bandwidth_and_removed_link_reroutes():
    faults = [{"between": ["3", "nvsw0"], "bandwidth_factor": 0.5},
              {"between": ["nic0.0", "leaf0.0"], "bandwidth_factor": 0.0}]
    topo = build_topology(load_cluster("dgx-a100", [("nodes", 2), ("faults.links", faults)]))
    assert topo.route_bandwidth_bytes_per_s(3, 4) == NVLINK3 / 2
    assert topo.capacity((("nvsw", 0), ("dev", 3))) == NVLINK3 / 2
    edges = topo.route(0, 8)  # its rail-0 uplink failed: goes around it
    assert (("nic", 0, 0), ("leaf", 0, 0)) not in edges
    assert all(topo.graph.has_edge(*e) for e in edges)


def test_fault_naming_a_missing_link():
    c = load_cluster("single-node", [("faults.links", [
        {"between": ["dev0", "dev1"], "bandwidth_factor": 0.5}])])
    with pytest.raises(ConfigError) as exc:
        build_topology(c)
    assert exc.value.key == "faults.links[0].between" and "no link" in exc.value.message


def test_device_count_mismatch():
    c = cluster({"device": "TPU-v4", "nodes": 16, "devices_per_node": 4,
                 "intra": {"topology": "none", "link": "ICI-v4"},
                 "inter": {"topology": "torus", "link": "ICI-v4", "dims": [4, 4, 2]}})
    with pytest.raises(ConfigError) as exc:
        build_topology(c)
    assert exc.value.key == "inter.dims" and "64" in exc.value.message
    assert exc.value.source == "test-cluster.yaml"


def test_auto_nodes_is_an_error():
    with pytest.raises(ConfigError) as exc:
        build_topology(load_cluster("dgx-a100"))
    assert exc.value.key == "nodes"


def test_inter_none_with_several_nodes():
    with pytest.raises(ConfigError) as exc:
        build_topology(load_cluster("single-node", [("nodes", 2)]))
    assert exc.value.key == "inter.topology"


@pytest.mark.parametrize("name", bundled_names("cluster"))
def test_every_bundled_topology_builds(name):
    c = load_cluster(name)
    if c.nodes == "auto":
        c = load_cluster(name, [("nodes", 2)])
    topo = build_topology(c)
    assert topo.num_devices == topo.nodes_count * topo.devices_per_node > 0
    d = topo.describe()
    assert d["devices"] == topo.num_devices and d["bisection_bandwidth_bytes_per_s"] > 0
    assert c.source


def test_describe_counts_links():
    d = build_topology(dgx(2)).describe()
    by = {(x["kind"], x["link"]): x for x in d["links"]}
    assert by[("intra", "NVLink3")]["count"] == 16       # 8 GPUs x 2 nodes, to NVSwitch
    assert by[("net", "IB-HDR")]["count"] == 16          # 8 NICs x 2 nodes, to leaves
    assert by[("host", "PCIe4")]["count"] == 16
    assert d["bisection_bandwidth_bytes_per_s"] == pytest.approx(8 * HDR_RAW)


@settings(deadline=None, derandomize=True, max_examples=40)
@given(nodes=st.integers(1, 6), radix=st.sampled_from([4, 8, 40]),
       rail=st.booleans(), data=st.data())
def test_routes_are_deterministic_and_valid(nodes, radix, rail, data):
    c = dgx(nodes, switch_radix=radix, rail_optimized=rail)
    t1, t2 = build_topology(c), build_topology(c)
    n = t1.num_devices
    a = data.draw(st.integers(0, n - 1))
    b = data.draw(st.integers(0, n - 1))
    assert t1.route(a, b) == t2.route(a, b) == t1.route(a, b)
    assert list(t1.graph.edges) == list(t2.graph.edges)
    if a != b:
        bw = t1.route_bandwidth_bytes_per_s(a, b)
        assert bw == (NVLINK3 if t1.node_of(a) == t1.node_of(b) else HDR)


@settings(deadline=None, derandomize=True, max_examples=30)
@given(dims=st.lists(st.integers(1, 5), min_size=1, max_size=3), data=st.data())
def test_torus_routes_take_shortest_hops(dims, data):
    total = 1
    for k in dims:
        total *= k
    c = cluster({"device": "TPU-v4", "nodes": total, "devices_per_node": 1,
                 "intra": {"topology": "none", "link": "ICI-v4"},
                 "inter": {"topology": "torus", "link": "ICI-v4", "dims": dims}})
    topo = build_topology(c)
    a = data.draw(st.integers(0, total - 1))
    b = data.draw(st.integers(0, total - 1))
    # Hops = sum over dimensions of the shorter way round.
    ca = [(a // p) % k for k, p in zip(dims, _strides(dims))]
    cb = [(b // p) % k for k, p in zip(dims, _strides(dims))]
    expect = sum(min((x - y) % k, (y - x) % k) for x, y, k in zip(ca, cb, dims))
    assert len(topo.route(a, b)) == expect


def _strides(dims):
    out, p = [], 1
    for k in reversed(dims):
        out.append(p)
        p *= k
    return list(reversed(out))


@pytest.mark.parametrize("intra, expect", [("ring", NVLINK3), ("mesh", NVLINK3),
                                           ("nvswitch", NVLINK3)])
def test_intra_generators(intra, expect):
    c = cluster({"nodes": 1, "devices_per_node": 8, "intra": {"topology": intra},
                 "inter": {"topology": "none"}})
    topo = build_topology(c)
    assert topo.route_bandwidth_bytes_per_s(0, 5) == expect
    if intra == "ring":
        assert len(topo.route(0, 5)) == 3       # 0 -> 7 -> 6 -> 5, the shorter way
    if intra == "mesh":
        assert len(topo.route(0, 5)) == 1


def test_registry_has_every_schema_name():
    # The schema accepts the registry's names (simwall.config.schema.OneOf).
    from simwall.config import InterSpec, IntraSpec
    from simwall.registry import INTER_TOPOLOGIES, INTRA_TOPOLOGIES
    assert set(INTRA_TOPOLOGIES.choices()) == set(GENERATORS["intra"])
    assert set(INTER_TOPOLOGIES.choices()) == set(GENERATORS["inter"])
    assert all(IntraSpec(topology=name).topology == name for name in GENERATORS["intra"])
    assert all(InterSpec(topology=name).topology == name for name in GENERATORS["inter"])


@pytest.mark.parametrize("text", ["dev3", "nic0.2", "nvsw1", "leaf2.0", "spine", "host4"])
def test_node_names_round_trip(text):
    assert node_name(parse_node_name(text)) == text


def test_node_name_forms():
    assert parse_node_name("7") == ("dev", 7)
    assert parse_node_name("nic3") is None and parse_node_name("bogus1") is None


def test_large_cluster_builds():
    # 3,072 GPUs, Megatron-LM 2021's largest run (build time: benchmarks/bench_engine.py).
    topo = build_topology(dgx(384))
    assert topo.num_devices == 3072
    assert topo.route_bandwidth_bytes_per_s(0, 3071) == HDR


@settings(deadline=None, derandomize=True, max_examples=60)
@given(nodes=st.integers(1, 9), radix=st.sampled_from([4, 6, 8, 40]),
       rail=st.booleans(), nics=st.sampled_from([1, 2, 4]),
       over=st.sampled_from([1.0, 2.0]),
       intra=st.sampled_from(["nvswitch", "ring", "mesh", "torus"]), data=st.data())
def test_route_latency_is_the_sum_over_the_route(nodes, radix, rail, nics, over, intra,
                                                  data):
    """The per-class memo of route_latency_s gives every pair the sum of its own edges'
    latencies (both the first pair of a class and every later one); the bulk form too,
    on short lists (pair by pair) and long ones (classes found with numpy)."""
    c = cluster({"nodes": nodes, "devices_per_node": 4,
                 "intra": {"topology": intra, "link": "NVLink3",
                           **({"dims": [2, 2]} if intra == "torus" else {})},
                 "inter": {"topology": "fat_tree", "link": "IB-HDR", "nics_per_node": nics,
                           "switch_radix": radix, "rail_optimized": rail,
                           "oversubscription": over}})
    topo = build_topology(c)
    n = topo.num_devices
    pairs = data.draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)),
                               min_size=1, max_size=150))
    fresh = build_topology(c)        # the bulk form, with nothing memoised yet
    bulk = fresh.route_latencies_s(pairs)
    for (a, b), got in zip(pairs, bulk, strict=True):
        edges = topo.route(a, b)
        expect = sum(topo.graph.edges[e]["latency_s"] for e in edges)
        assert topo.route_latency_s(a, b) == pytest.approx(expect, rel=1e-12, abs=0)
        assert got == pytest.approx(expect, rel=1e-12, abs=0)


@settings(deadline=None, derandomize=True, max_examples=40)
@given(nodes=st.integers(1, 9), per_node=st.sampled_from([1, 2, 4]),
       inter=st.sampled_from(["fat_tree", "ring"]), radix=st.sampled_from([4, 6, 40]),
       rail=st.booleans(), nics=st.sampled_from([1, 2, 4]), over=st.sampled_from([1.0, 2.0]),
       intra=st.sampled_from(["nvswitch", "ring", "mesh"]))
def test_edges_read_node_by_node_match_the_whole_graph(nodes, per_node, inter, radix, rail,
                                                       nics, over, intra):
    """A fault-free cluster is built without its graph; the attributes read node by
    node as routes reach them are those of the graph built later, edge for edge, and
    an edge that is not in the graph is a KeyError."""
    c = cluster({"nodes": nodes, "devices_per_node": per_node,
                 "intra": {"topology": intra, "link": "NVLink3"},
                 "inter": {"topology": inter, "link": "IB-HDR", "nics_per_node": nics,
                           "switch_radix": radix, "rail_optimized": rail,
                           "oversubscription": over}})
    lazy = build_topology(c)
    assert not lazy.graph_built
    n = lazy.num_devices
    bottlenecks = {(a, b): lazy.route_bandwidth_bytes_per_s(a, b)
                   for a in range(n) for b in range(n)}
    got = {e: dict(lazy.edge_attrs(e)) for e in build_topology(c).graph.edges}
    graph = lazy.graph                               # built now, from the same generators
    assert got == {e: graph.edges[e] for e in graph.edges}
    for (a, b), bw in bottlenecks.items():
        assert bw == min((graph.edges[e]["bandwidth_bytes_per_s"] * graph.edges[e]["efficiency"]
                          for e in lazy.route(a, b)), default=math.inf)
    with pytest.raises(KeyError):
        build_topology(c).edge_attrs((("dev", 0), ("dev", 0)))


def test_faults_and_intra_none_build_the_graph_at_once():
    """They need it: faults are applied to it and checked against it; without an intra
    fabric connectivity is not given by construction."""
    assert not build_topology(dgx(2)).graph_built
    faulty = load_cluster("dgx-a100", [("nodes", 2), ("faults.links", [
        {"between": ["nic0.0", "leaf0.0"], "bandwidth_factor": 0.5}])])
    assert build_topology(faulty).graph_built
    assert build_topology(load_cluster("tpu-v4", [("nodes", 16)])).graph_built


# A generator that declares no symmetry traits: the fat-tree's links and routes, nothing
# else (registered by the test below as "undeclared_tree").
from simwall.net.generators import inter_fat_tree as _fat_tree
from simwall.net.generators.base import Generator

UNDECLARED = Generator(_fat_tree.links, _fat_tree.route, "fat-tree links, no traits",
                       shared=_fat_tree.uplinks)


def test_a_generator_that_declares_no_symmetry_is_costed_per_stage():
    """Symmetry is declared, never assumed: a new generator registered without traits
    gets the conservative answers (no shift invariance, so per-stage costing; no disjoint
    rails; every node in contention; no repeating block, so no symmetry window), though
    its links are those of a fat-tree, whose declared traits say otherwise."""
    from types import SimpleNamespace

    from simwall.costing import costs_symmetrically
    from simwall.net.collectives import symmetry_window
    from simwall.registry import INTER_TOPOLOGIES

    spec = dgx(32, rail_optimized=True)
    declared = build_topology(spec)
    INTER_TOPOLOGIES.register("undeclared_tree", f"{__name__}:UNDECLARED")
    try:
        plain_spec = spec.model_copy(update={
            "inter": spec.inter.model_copy(update={"topology": "undeclared_tree"})})
        plain = build_topology(plain_spec)
        plan = SimpleNamespace(dp=4, tp=8, dp_cp=4)  # dp_cp: DP x CP (cp 1)
        group = list(range(0, plain.num_devices, 8))
        # Same network: same routes and capacities.
        assert plain.route(0, 200) == declared.route(0, 200)
        assert plain.route_bandwidth_bytes_per_s(3, 250) == \
            declared.route_bandwidth_bytes_per_s(3, 250)
        # The fat-tree declares its symmetry ...
        assert declared.shift_invariant(32) and costs_symmetrically(spec, declared, plan)
        assert declared.rails_disjoint() and declared.block_nodes()
        assert declared.contention_nodes(0) == range(1)
        # ... the undeclared generator gets none of it.
        assert not plain.shift_invariant(32)
        assert not plain.shift_invariant(plain.devices_per_node)
        assert not costs_symmetrically(plain_spec, plain, plan)
        assert not plain.rails_disjoint()
        assert plain.block_nodes() is None
        assert symmetry_window(group, plain) is None
        assert plain.contention_nodes(0) == range(plain.nodes_count)
    finally:
        INTER_TOPOLOGIES.unregister("undeclared_tree")
