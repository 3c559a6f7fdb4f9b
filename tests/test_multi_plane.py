"""Multi-plane fabrics (issue 19): each NIC split over independent identical planes,
every transfer striped over all of them (simwall.net.generators.inter_multi_plane).

Physics stated by the tests: a device pair's bandwidth across nodes is the sum of its
planes'; P planes of 1/P of a NIC each cost what one plane of the whole NIC costs (max-min
rates scale with capacities); more planes at a fixed bandwidth per plane never slow a
step; a failed plane of P removes 1/P of every crossing transfer's bandwidth; a plane
degraded on one link slows the plans that cross it, costed device by device.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simwall import simulate
from simwall.cli.main import main
from simwall.config import ClusterSpec, validate
from simwall.costing.groups import costs_symmetrically
from simwall.errors import ConfigError
from simwall.hardware.catalog import get_link
from simwall.net import build_topology

_NDR = get_link("IB-NDR")
NDR = _NDR.bandwidth_bytes_per_s * _NDR.efficiency          # achievable per NIC

# DP 16 across 4 DGX H100 nodes (TP 2 inside each), the gradient all-reduce not
# overlapped: its time is exposed in the step, so the fabric shows.
CROSS = {"cluster.nodes": 4, "plan.tp": 2, "plan.pp": 1, "plan.dp_overlap": False}
TWO = {"cluster.inter.topology": "multi_plane", "cluster.inter.planes": 2}


def cluster(nodes: int, inter: dict, faults: dict | None = None, per_node: int = 4
            ) -> ClusterSpec:
    doc = {"name": "t", "device": "H100-SXM5-80GB", "nodes": nodes,
           "devices_per_node": per_node, "intra": {"topology": "nvswitch", "link": "NVLink4"},
           "inter": {"link": "IB-NDR", "nics_per_node": per_node, **inter}}
    if faults:
        doc["faults"] = faults
    return validate(ClusterSpec, doc, "t.yaml")


def _edges(topo) -> dict:
    g = topo.graph
    return {e: dict(g.edges[e]) for e in g.edges}


@pytest.mark.parametrize("plane", [
    {"plane_topology": "fat_tree", "switch_radix": 4},
    {"plane_topology": "fat_tree", "switch_radix": 4, "oversubscription": 3.0,
     "rail_optimized": False},
    {"plane_topology": "fat_tree3", "switch_radix": 4, "agg_oversubscription": 2.0},
    {"plane_topology": "rail_only"},
    {"plane_topology": "dragonfly", "router_nodes": 1, "group_routers": 2, "global_links": 2},
])
@pytest.mark.parametrize("planes", [2, 4])
def test_planes_sum_to_one_plane_of_the_whole_nic(plane, planes):
    """P planes of 1/P of a NIC carry what one plane of the whole NIC carries: the same
    links and capacities, and every cross-node pair's route bandwidth is the NIC's."""
    fabric = {k: v for k, v in plane.items() if k != "plane_topology"}
    one = build_topology(cluster(8, {"topology": plane["plane_topology"], **fabric}))
    many = build_topology(cluster(8, {"topology": "multi_plane", "planes": planes, **plane}))
    assert _edges(many) == _edges(one)
    assert many.route_bandwidth_bytes_per_s(0, 4) == NDR == one.route_bandwidth_bytes_per_s(0, 4)
    assert many.bisection_bandwidth_bytes_per_s() == one.bisection_bandwidth_bytes_per_s()
    for trait in ("block_nodes", "rails_disjoint"):
        assert getattr(many, trait)() == getattr(one, trait)()
    assert [many.shift_invariant(d) for d in (1, 2, 4, 8, 16)] == \
        [one.shift_invariant(d) for d in (1, 2, 4, 8, 16)]


@pytest.mark.parametrize("workload, over", [
    ("llama2-7b", CROSS),
    ("gpt2", {"cluster.nodes": 4, "plan.tp": 1, "plan.pp": 2, "plan.dp_overlap": False}),
    ("mixtral-8x7b", {}),
])
def test_two_half_planes_give_the_step_of_one_whole_plane(workload, over):
    """A bundled workload on DGX H100: two planes of 200 Gb/s per NIC (the NDR NIC's
    400 Gb/s split) give the same step, breakdown, memory and energy as the bundled
    single-plane fat-tree of 400 Gb/s NICs, to the last bit: with every transfer striped
    evenly, each plane carries half of every flow at half the capacity."""
    one = simulate(workload, "dgx-h100", **over)
    two = simulate(workload, "dgx-h100", **over, **TWO)
    assert two.step_time_s == one.step_time_s
    assert two.breakdown_s == one.breakdown_s
    assert two.memory == one.memory
    assert two.energy == one.energy


@settings(deadline=None, derandomize=True, max_examples=12)
@given(fewer=st.integers(1, 3), more=st.integers(2, 4),
       fabric=st.sampled_from(["fat_tree", "fat_tree3", "rail_only", "dragonfly"]),
       dp_overlap=st.booleans())
def test_more_planes_at_a_fixed_plane_bandwidth_are_never_slower(fewer, more, fabric,
                                                                dp_overlap):
    """Each plane a 100 Gb/s port: more planes give each NIC more bandwidth (the sum),
    and the step never gets longer."""
    if more <= fewer:
        fewer, more = more - 1, fewer + 1
    per_plane = _NDR.bandwidth_bytes_per_s / 4

    def step(planes: int) -> float:
        return simulate("llama2-7b", "dgx-h100", **{
            **CROSS, **TWO, "plan.dp_overlap": dp_overlap, "cluster.inter.planes": planes,
            "cluster.inter.plane_topology": fabric, "cluster.inter.switch_radix": 4,
            "cluster.inter.router_nodes": 1, "cluster.inter.group_routers": 2,
            "cluster.inter.global_links": 2,
            "cluster.inter.link": {"base": "IB-NDR", "bandwidth": planes * per_plane}}
        ).step_time_s

    assert step(more) <= step(fewer)


@pytest.mark.parametrize("planes", [2, 4])
def test_a_failed_plane_removes_its_share_of_every_crossing_transfer(planes):
    faults = {"planes": [{"plane": planes - 1, "bandwidth_factor": 0.0}]}
    topo = build_topology(cluster(4, {"topology": "multi_plane", "planes": planes,
                                      "switch_radix": 4}, faults))
    whole = build_topology(cluster(4, {"topology": "multi_plane", "planes": planes,
                                       "switch_radix": 4}))
    for a, b in [(0, 4), (1, 13), (0, 7), (5, 10)]:        # across nodes (and leaves)
        assert math.isclose(topo.route_bandwidth_bytes_per_s(a, b),
                            NDR * (planes - 1) / planes, rel_tol=1e-15)
    assert topo.route_bandwidth_bytes_per_s(0, 3) == whole.route_bandwidth_bytes_per_s(0, 3)
    # Every plane link degraded alike: the fabric keeps its symmetry.
    assert topo.shift_invariant(4) and topo.rails_disjoint()
    assert topo.block_nodes() == whole.block_nodes()


def test_a_failed_plane_slows_the_step_and_symmetric_costing_stays_exact():
    """Half of a 2-plane fabric failed: the exposed DP all-reduce runs on half the NIC
    bandwidth (its bandwidth term doubles; latency terms do not), and the symmetric run
    agrees with costing every device."""
    failed = {**CROSS, **TWO, "cluster.faults.planes": [{"plane": 0, "bandwidth_factor": 0.0}]}
    base = simulate("llama2-7b", "dgx-h100", **CROSS, **TWO)
    sym = simulate("llama2-7b", "dgx-h100", **failed)
    per = simulate("llama2-7b", "dgx-h100", per_device=True, **failed)
    assert sym.step_time_s > base.step_time_s
    assert 1.5 < sym.breakdown_s["dp_comm"] / base.breakdown_s["dp_comm"] <= 2.0 + 1e-9
    assert sym.breakdown_s == pytest.approx(per.breakdown_s, rel=0.01, abs=1e-6)
    assert sym.breakdown_s["compute"] == base.breakdown_s["compute"]


LOCAL = [{"plane": 1, "between": ["nic0.3", "leaf3.0"], "bandwidth_factor": 0.0}]


def test_a_plane_degraded_on_one_link_slows_a_per_device_run():
    """Plane 1 of NIC 3 of node 0 failed in a 2-plane fabric: that NIC keeps half its
    bandwidth, exactly as a single-plane fabric whose same link runs at half speed;
    the cluster declares no symmetry, so it is costed device by device."""
    over = {**CROSS, **TWO, "cluster.faults.planes": LOCAL}
    base = simulate("llama2-7b", "dgx-h100", per_device=True, **CROSS, **TWO)
    slow = simulate("llama2-7b", "dgx-h100", per_device=True, **over)
    auto = simulate("llama2-7b", "dgx-h100", **over)
    half_link = simulate("llama2-7b", "dgx-h100", per_device=True, **CROSS, **{
        "cluster.faults.links": [{"between": ["nic0.3", "leaf3.0"], "bandwidth_factor": 0.5}]})
    assert slow.step_time_s > base.step_time_s * (1 + 1e-6)
    assert slow.breakdown_s["dp_comm"] > base.breakdown_s["dp_comm"] * 1.2
    assert math.isclose(slow.step_time_s, half_link.step_time_s, rel_tol=1e-12)
    assert auto.step_time_s == slow.step_time_s
    topo = build_topology(cluster(4, {"topology": "multi_plane", "planes": 2,
                                      "switch_radix": 4}, {"planes": LOCAL}))
    assert not topo.shift_invariant(4) and not topo.rails_disjoint()
    assert topo.block_nodes() is None and topo.contention_nodes(1) == range(4)
    assert not costs_symmetrically(topo.cluster, topo, _plan(topo))
    # Other NICs keep both planes.
    assert topo.route_bandwidth_bytes_per_s(3, 7) == NDR / 2
    assert topo.route_bandwidth_bytes_per_s(2, 6) == NDR


def _plan(topo):
    class _P:                    # costs_symmetrically reads dp_cp * tp only
        dp_cp, tp = 1, topo.devices_per_node
    return _P()


def test_plane_faults_are_kept_out_of_other_fabrics_and_export_pooled(tmp_path):
    with pytest.raises(ConfigError, match="faults.planes"):
        cluster(4, {"topology": "fat_tree"}, {"planes": [{"plane": 0, "bandwidth_factor": 0.5}]})
    from simwall.net.export import export_graph_doc
    c = cluster(2, {"topology": "multi_plane", "planes": 2, "switch_radix": 4},
                {"planes": [{"plane": 1, "bandwidth_factor": 0.0}]})
    doc = export_graph_doc(c)
    assert "planes" not in doc["inter"] and "planes" not in doc.get("faults", {})
    back = build_topology(validate(ClusterSpec, doc, "back.yaml"))
    assert back.route_bandwidth_bytes_per_s(0, 4) == NDR / 2


# ---------------------------------------------------------------------------------------
# Bad plane counts and plane faults: one located line, never a traceback

_FILE = """\
name: planes
source: test
device: H100-SXM5-80GB
nodes: 2
devices_per_node: 4
intra: {{topology: nvswitch, link: NVLink4}}
inter:
  topology: {topology}
  link: IB-NDR
  nics_per_node: 4
  switch_radix: 4
  planes: {planes}
  plane_topology: {plane_topology}
faults:
  planes:
    - plane: {plane}
      between: {between}
      bandwidth_factor: {factor}
"""
_GOOD = {"topology": "multi_plane", "planes": "2", "plane_topology": "fat_tree",
         "plane": "1", "between": "[nic0.1, leaf1.0]", "factor": "0.5"}


@pytest.mark.parametrize("fields, key, line, needle", [
    ({"planes": "0"}, "inter.planes", 12, "expected an integer from 1 to 64, got"),
    ({"planes": "-2"}, "inter.planes", 12, "expected an integer from 1 to 64, got"),
    ({"planes": "2.5"}, "inter.planes", 12, "integer"),
    ({"planes": "two"}, "inter.planes", 12, "integer"),
    ({"planes": "65"}, "inter.planes", 12, "expected an integer from 1 to 64, got 65"),
    ({"topology": "fat_tree"}, "inter.planes", 12, "multi_plane"),
    ({"plane_topology": "torus"}, "inter.plane_topology", 13, "switched fabric"),
    ({"plane_topology": "multi_plane"}, "inter.plane_topology", 13, "switched fabric"),
    ({"plane_topology": "mesh"}, "inter.plane_topology", 13, "expected one of"),
    ({"plane": "2"}, "faults.planes[0].plane", 16, "must be below inter.planes (2"),
    ({"planes": "1", "plane": "1"}, "faults.planes[0].plane", 16, "must be below"),
    ({"between": "[nic0.1, leaf0.0]"}, "faults.planes[0].between", 17, "no link of the planes"),
    ({"between": "[dev1, nic0.1]"}, "faults.planes[0].between", 17, "NIC or switch"),
    ({"between": "[nic0.1, bogus]"}, "faults.planes[0].between", 17, "NIC or switch"),
    ({"planes": "1", "plane": "0", "factor": "0.0"}, "faults.planes[0].between", 17,
     "every plane of the link"),
])
def test_bad_planes_get_one_located_line(tmp_path, capsys, fields, key, line, needle):
    path = tmp_path / "planes.yaml"
    path.write_text(_FILE.format(**{**_GOOD, **fields}))
    code = main(["run", "gpt2", "--cluster", str(path)])
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"simwall: error: {path}:{line}: {key}: "), lines[0]
    assert needle in lines[0], lines[0]


def test_the_bad_planes_template_is_valid(tmp_path, capsys):
    path = tmp_path / "planes.yaml"
    path.write_text(_FILE.format(**_GOOD))
    assert main(["run", "gpt2", "--cluster", str(path)]) == 0, capsys.readouterr().err


def test_every_plane_failed_is_refused():
    with pytest.raises(ConfigError, match="every one of the 2 planes failed"):
        build_topology(cluster(2, {"topology": "multi_plane", "planes": 2}, {"planes": [
            {"plane": 0, "bandwidth_factor": 0.0}, {"plane": 1, "bandwidth_factor": 0.0}]}))


def test_example_cluster_files_build():
    root = Path(__file__).resolve().parents[1] / "examples" / "design"
    for name in ("h100-1024-multi-plane.yaml",):
        r = simulate("llama2-7b", str(root / name), **{"cluster.nodes": 2, "plan.tp": 8})
        assert math.isfinite(r.step_time_s)


@pytest.mark.parametrize("plane, faults", [
    ({"plane_topology": "fat_tree3", "switch_radix": 4, "agg_oversubscription": 2.0},
     [{"plane": 0, "between": ["leaf0.1", "agg0.0"], "bandwidth_factor": 0.25},
      {"plane": 2, "bandwidth_factor": 0.5}]),
    ({"plane_topology": "dragonfly", "router_nodes": 1, "group_routers": 2, "global_links": 2},
     [{"plane": 1, "between": ["rtr0.0", "rtr0.1"], "bandwidth_factor": 0.0},
      {"plane": 1, "between": ["nic3.0", "rtr1.1"], "bandwidth_factor": 0.5}]),
])
def test_plane_faults_read_node_by_node_match_the_whole_graph(plane, faults):
    """Edges read lazily (one node's or switch's links at a time) carry the same plane
    shares as the whole graph, and a degraded link keeps (sum of plane factors) / P."""
    c = cluster(8, {"topology": "multi_plane", "planes": 3, **plane}, {"planes": faults})
    lazy, whole = build_topology(c), build_topology(c).graph
    assert {e: dict(lazy.edge_attrs(e)) for e in whole.edges} == \
        {e: dict(whole.edges[e]) for e in whole.edges}
    fabric = {k: v for k, v in plane.items() if k != "plane_topology"}
    healthy = build_topology(cluster(8, {"topology": plane["plane_topology"], **fabric})).graph
    from simwall.net.names import parse_node_name
    for f in faults:
        if "between" not in f:
            continue
        u, v = (parse_node_name(t) for t in f["between"])
        whole_share = 0.5 if plane["plane_topology"] == "fat_tree3" else 1.0
        others = sum(whole_share if p == 2 else 1.0 for p in range(3) if p != f["plane"])
        mine = f["bandwidth_factor"] * (whole_share if f["plane"] == 2 else 1.0)
        assert math.isclose(whole.edges[u, v]["bandwidth_bytes_per_s"],
                            healthy.edges[u, v]["bandwidth_bytes_per_s"] * (others + mine) / 3,
                            rel_tol=1e-15)
