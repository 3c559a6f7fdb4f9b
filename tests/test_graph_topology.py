"""Explicit cluster graphs (issue 19): graph files, GraphML, networkx graphs, the export of
a generated cluster, ECMP routes, declared symmetry, and located errors for bad files."""

from __future__ import annotations

import re

import networkx as nx
import pytest

from simwall import simulate
from simwall.api import run_prepared
from simwall.cli.main import main
from simwall.config import bundled_names, load_cluster, load_workload
from simwall.config.graph import cluster_from_networkx
from simwall.engine.prepare import prepare
from simwall.errors import ConfigError, SimwallError
from simwall.net.export import export_graph_text

# -- done-when: dgx-a100 written out as a graph file runs identically --------------------

#: Largest cluster the identity test writes out (1,024 DGX nodes).
MAX_EXPORT_DEVICES = 8192


@pytest.mark.parametrize("workload", bundled_names("workload"))
def test_exported_dgx_a100_graph_file_gives_identical_step_and_memory(workload, tmp_path):
    over: dict = {}
    if load_workload(workload).training.precision == "fp8":
        over["training.precision"] = "bf16"      # the A100 has no FP8 units
    plan = prepare(workload, "dgx-a100", over).plan
    if plan.world > MAX_EXPORT_DEVICES:
        # Beyond 1,024 nodes the graph file passes simwall's YAML size limit: the same
        # plan with fewer DP replicas.
        per_replica = plan.world // plan.dp
        dp = MAX_EXPORT_DEVICES // per_replica
        over.update({"plan.dp": dp, "cluster.nodes": dp * per_replica // 8})
    prep = prepare(workload, "dgx-a100", over)
    want = run_prepared(prep)
    path = tmp_path / "graph.yaml"
    path.write_text(export_graph_text(prep.cluster))
    cluster = load_cluster(str(path))
    assert cluster.graph is not None and cluster.intra.topology == "graph"
    got = run_prepared(prepare(workload, cluster,
                               {k: v for k, v in over.items() if not k.startswith("cluster.")}))
    assert got.step_time_s == want.step_time_s
    assert got.memory == want.memory
    assert got.breakdown_s == want.breakdown_s


def test_export_cli_writes_a_cluster_file_that_runs(tmp_path, capsys):
    path = tmp_path / "dgx.yaml"
    assert main(["topo", "dgx-a100", "--set", "cluster.nodes=2", "--export", str(path)]) == 0
    text = path.read_text()
    assert "topology: graph" in text and "rail_matching: true" in text
    assert "routes:" not in text          # every generator route is a graph route
    assert main(["topo", str(path), "--route", "0", "9"]) == 0
    out = capsys.readouterr().out
    assert "route 0 -> 9: 6 hops" in out


def test_export_as_graphml_reads_back_identically(tmp_path, capsys):
    path = tmp_path / "dgx.graphml"
    assert main(["topo", "dgx-a100", "--set", "cluster.nodes=2", "--export", str(path)]) == 0
    want = simulate("llama2-7b", "dgx-a100", **{"cluster.nodes": 2, "plan.pp": 2})
    got = simulate("llama2-7b", str(path), **{"plan.pp": 2})
    assert got.step_time_s == want.step_time_s and got.memory == want.memory


def test_export_writes_the_routes_shortest_paths_would_not_give(tmp_path):
    # An inter-node ring's dimension-order tie-break (the + way round) is not what ECMP
    # hashing picks for every pair: those routes are written out, and read back the same.
    prep = prepare("gpt2", "dgx-a100", {"cluster.nodes": 4, "cluster.inter.topology": "ring",
                                        "cluster.intra.topology": "ring"})
    path = tmp_path / "ring.yaml"
    path.write_text(export_graph_text(prep.cluster))
    assert "routes:" in path.read_text()
    cluster = load_cluster(str(path))
    ours = prepare("gpt2", cluster, {}).topology
    for a in range(prep.topology.num_devices):
        for b in range(prep.topology.num_devices):
            assert ours.route(a, b) == prep.topology.route(a, b)


# -- networkx graphs and GraphML ---------------------------------------------------------

def _two_spine_graph(symmetry: bool = False) -> nx.Graph:
    """2 nodes x 4 GPUs on an NVSwitch each, a NIC per GPU, two leaves, two spines."""
    g = nx.Graph(name="two-spine", device="A100-SXM4-80GB")
    g.graph["intra.link"] = "NVLink3"
    g.graph["inter.link"] = "IB-HDR"
    g.graph["inter.nics_per_node"] = 4
    if symmetry:
        g.graph["symmetry.shift_period"] = 4
        g.graph["symmetry.node_traffic_intra"] = True
        g.graph["symmetry.shift_symmetric"] = True
    for n in range(2):
        for k in range(4):
            g.add_node(f"gpu{n}.{k}", kind="device", node=n)
    for n in range(2):
        g.add_node(f"nvs{n}", kind="switch", node=n)
        for k in range(4):
            g.add_edge(f"gpu{n}.{k}", f"nvs{n}", type="NVLink3")
            g.add_node(f"hca{n}.{k}", kind="nic", node=n, rail=k)
            g.add_edge(f"gpu{n}.{k}", f"hca{n}.{k}", type="IB-HDR", latency=0.0)
            g.add_edge(f"hca{n}.{k}", f"tor{n}", type="IB-HDR")
    for n in range(2):
        for s in range(2):
            g.add_edge(f"tor{n}", f"core{s}", type="IB-HDR", bandwidth=50e9)
    for n in ("tor0", "tor1", "core0", "core1"):
        g.nodes[n]["kind"] = "switch"
    return g


def test_networkx_graph_through_the_api_runs_and_assumes_no_symmetry():
    g = _two_spine_graph()
    r = simulate("gpt2", g)
    assert r.world == 8 and r.step_time_s > 0
    topo = prepare("gpt2", cluster_from_networkx(g), {}).topology
    assert not topo.shift_invariant(4) and not topo.rails_disjoint()
    assert topo.contention_nodes(0) == range(2)
    declared = prepare("gpt2", cluster_from_networkx(_two_spine_graph(True)), {}).topology
    assert declared.shift_invariant(4)
    # The declared symmetry holds here, so the fast path agrees with stage-by-stage.
    assert simulate("gpt2", _two_spine_graph(True)).step_time_s == pytest.approx(
        r.step_time_s, rel=1e-9)


def test_ecmp_spreads_pairs_over_equal_cost_spines_deterministically():
    topo = prepare("gpt2", cluster_from_networkx(_two_spine_graph()), {}).topology
    used = set()
    for a in range(4):
        for b in range(4, 8):
            route = topo.route(a, b)
            assert len(route) == 6          # gpu-hca-tor-core-tor-hca-gpu
            spines = {v for _, v in route if v[0] == "switch" and v[1].startswith("core")}
            assert len(spines) == 1
            used |= spines
    assert used == {("switch", "core0"), ("switch", "core1")}
    again = prepare("gpt2", cluster_from_networkx(_two_spine_graph()), {}).topology
    assert all(again.route(a, b) == topo.route(a, b) for a in range(8) for b in range(8))


def test_graphml_file_named_by_a_cluster_file(tmp_path):
    g = _two_spine_graph()
    nx.write_graphml(g, tmp_path / "fabric.graphml")
    (tmp_path / "c.yaml").write_text(
        "name: gml\ndevice: A100-SXM4-80GB\ngraph: fabric.graphml\n"
        "inter: {link: IB-HDR, nics_per_node: 4}\n")
    r = simulate("gpt2", str(tmp_path / "c.yaml"))
    assert r.step_time_s == simulate("gpt2", g).step_time_s


# -- bad graph files: one located line, never a traceback --------------------------------

_GOOD = """\
name: tiny
device: A100-SXM4-80GB
graph:
  nodes:
    - {name: a, kind: device}
    - {name: b, kind: device}
    - {name: sw, kind: switch, node: 0}
  links:
    - {between: [a, sw], type: NVLink3}
    - {between: [b, sw], type: NVLink3}
"""


def test_a_good_inline_graph_runs(tmp_path):
    (tmp_path / "c.yaml").write_text(_GOOD)
    assert simulate("gpt2", str(tmp_path / "c.yaml"), **{"plan.dp": 2}).world == 2


@pytest.mark.parametrize("old, new, where, words", [
    ("    - {between: [b, sw], type: NVLink3}\n", "", "nodes[1]", "'b' is unreachable"),
    ("{between: [b, sw], type: NVLink3}", "{between: [b, sw], type: NVLink3, bandwidth: 0.0}",
     "links[1]", "no capacity"),
    ("{between: [b, sw], type: NVLink3}", "{between: [b, sw]}", "links[1]", "no capacity"),
    ("{name: b, kind: device}", "{name: b, kind: device, memory_capacity: 0.0}", "nodes[1]",
     "has no memory"),
    ("[b, sw]", "[b, sx]", "links[1]", "no node named 'sx'"),
    ("{name: sw, kind: switch, node: 0}", "{name: a, kind: switch, node: 0}", "nodes[2]",
     "listed twice"),
    ("type: NVLink3}\n    - {between: [b", "type: NVLink9}\n    - {between: [b", "links[0].type",
     "NVLink9"),
    ("    - {between: [a, sw], type: NVLink3}\n",
     "    - {between: [a, sw], type: NVLink3}\n    - {between: [sw, a], type: NVLink3}\n",
     "links[1]", "listed twice"),
])
def test_bad_graph_gets_one_located_line(tmp_path, capsys, old, new, where, words):
    assert old in _GOOD
    path = tmp_path / "c.yaml"
    path.write_text(_GOOD.replace(old, new))
    assert main(["run", "gpt2", "--cluster", str(path), "--set", "plan.dp=2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert where in err and words in err
    assert f"{path}:" in err or "c.yaml:" in err       # the file, with a line


def test_bad_route_and_unreadable_graphml(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(_GOOD + "  routes:\n    - {path: [a, b]}\n")
    with pytest.raises(ConfigError, match=r"routes\[0\]\.path: no link between 'a' and 'b'"):
        simulate("gpt2", str(path), **{"plan.dp": 2})
    (tmp_path / "bad.graphml").write_text("<graphml><not closed")
    (tmp_path / "g.yaml").write_text("name: x\ngraph: bad.graphml\n")
    with pytest.raises(ConfigError, match="not a readable GraphML file"):
        load_cluster(str(tmp_path / "g.yaml"))


def test_graph_topology_without_a_graph_is_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: x\nintra: {topology: graph}\ninter: {topology: graph}\n")
    with pytest.raises(ConfigError, match="'graph' needs the cluster's graph"):
        simulate("gpt2", str(path))


def test_whatif_scales_an_exported_graph_as_it_scales_the_generators(tmp_path, capsys):
    """A what-if link (as simwall whatif writes it) reaches the graph's links of that
    class and level: the exported cluster answers every --scale as the generated one."""
    import json
    path = tmp_path / "g.yaml"
    path.write_text(export_graph_text(prepare("llama2-7b", "dgx-a100",
                                              {"cluster.nodes": 4}).cluster))
    scales = ["--scale", "nic=2", "--scale", "nvlink=0.5", "--scale", "latency=3",
              "--scale", "pcie=2", "--format", "json", "--no-elasticities"]
    assert main(["whatif", "llama2-7b", "--cluster", str(path)] + scales) == 0
    ours = json.loads(capsys.readouterr().out)
    assert main(["whatif", "llama2-7b", "--cluster", "dgx-a100", "--set", "cluster.nodes=4"]
                + scales) == 0
    theirs = json.loads(capsys.readouterr().out)
    for side in ("baseline", "scaled"):
        assert ours[side]["step_time_s"] == theirs[side]["step_time_s"]
        assert ours[side]["breakdown_s"] == theirs[side]["breakdown_s"]
    assert ours["scaled"]["step_time_s"] != ours["baseline"]["step_time_s"]


def test_gb200_nvl72_exports_with_its_host_link_written_once(tmp_path):
    plan = {"plan.tp": 8, "plan.pp": 2, "training.global_batch": 1152}   # dp 9
    prep = prepare("llama2-7b", "gb200-nvl72", {"cluster.nodes": 2, **plan})
    path = tmp_path / "nvl.yaml"
    path.write_text(export_graph_text(prep.cluster))
    cluster = load_cluster(str(path))
    assert cluster.host.link == "NVLink-C2C"
    ours = prepare("llama2-7b", cluster, plan).topology
    assert ours.capacity(ours.host_edge(0)) == prep.topology.capacity(
        prep.topology.host_edge(0)) == 225e9
    assert run_prepared(prepare("llama2-7b", cluster, plan)).step_time_s == \
        run_prepared(prep).step_time_s


def test_a_graph_level_without_its_link_takes_the_class_of_its_links(tmp_path, capsys):
    """An H100 graph whose file leaves out intra.link and inter.link (defaults: NVLink3,
    IB-HDR) is costed with its own links' classes, NVLink4 and IB-NDR: the same step as
    with the keys written, the same confidence, and a --scale nic reaches its NICs."""
    import yaml
    over = {"cluster.nodes": 2}
    text = export_graph_text(prepare("llama2-7b", "dgx-h100", over).cluster)
    doc = yaml.safe_load(text)
    assert doc["intra"]["link"] == "NVLink4" and doc["inter"]["link"] == "IB-NDR"
    full, bare = tmp_path / "full.yaml", tmp_path / "bare.yaml"
    full.write_text(text)
    del doc["intra"]["link"], doc["inter"]["link"]
    bare.write_text(yaml.safe_dump(doc))
    plan = {"plan.tp": 4}
    a, b = simulate("llama2-7b", str(full), **plan), simulate("llama2-7b", str(bare), **plan)
    assert a.step_time_s == b.step_time_s and a.breakdown_s == b.breakdown_s
    assert [x["link"] for x in b.confidence["links"]] == ["NVLink4", "IB-NDR"]
    args = ["whatif", "llama2-7b", "--cluster", str(bare), "--set", "plan.tp=4",
            "--scale", "nic=0.5", "--no-elasticities", "--format", "json"]
    assert main(args) == 0
    out = __import__("json").loads(capsys.readouterr().out)
    assert out["scaled"]["breakdown_s"]["dp_comm"] > out["baseline"]["breakdown_s"]["dp_comm"]


_TINY_LINKS = """\
name: small
device: H100-SXM5-80GB
graph:
  nodes:
    - {name: g0, kind: device, node: 0}
    - {name: g1, kind: device, node: 0}
    - {name: g2, kind: device, node: 1}
    - {name: g3, kind: device, node: 1}
    - {name: s0, kind: switch, node: 0}
    - {name: s1, kind: switch, node: 1}
    - {name: n0, kind: nic, node: 0, rail: 0}
    - {name: n1, kind: nic, node: 0, rail: 1}
    - {name: n2, kind: nic, node: 1, rail: 0}
    - {name: n3, kind: nic, node: 1, rail: 1}
    - {name: tor, kind: switch}
  links:
    - {between: [g0, s0], type: NVLink4}
    - {between: [g1, s0], type: NVLink4}
    - {between: [g2, s1], type: NVLink4}
    - {between: [g3, s1], type: NVLink4}
    - {between: [g0, n0], type: IB-NDR}
    - {between: [g1, n1], type: IB-NDR}
    - {between: [g2, n2], type: IB-NDR}
    - {between: [g3, n3], type: IB-NDR}
    - {between: [n0, tor], type: IB-NDR, bandwidth: 1e-300}
    - {between: [n1, tor], type: IB-NDR}
    - {between: [n2, tor], type: IB-NDR}
    - {between: [n3, tor], type: IB-NDR}
"""


def test_a_non_finite_step_names_the_graph_link_that_caused_it(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(_TINY_LINKS)
    with pytest.raises(SimwallError, match=r"cluster.graph.links\[8\].bandwidth = 1e-300 "
                                           r"gives a non-finite step time"):
        simulate("gpt2", str(path))


# -- GraphML export: every cluster key carried, or the export refused --------------------

_WHATIF = """\
name: whatif
device: {base: H100-SXM5-80GB, memory_bandwidth: 4.0e12}
nodes: 2
devices_per_node: 8
intra: {topology: nvswitch, link: NVLink4}
inter: {topology: fat_tree, link: IB-NDR, nics_per_node: 8}
host: {link: PCIe5}
pue: 1.5
power_overhead: 1.1
price_per_device_hour: 2.0
memory_reserved: 2.0e9
"""


def test_graphml_export_carries_every_cluster_key_exactly(tmp_path):
    """A what-if device, PUE, power overhead, price and reserved memory come back from
    GraphML as from YAML (they were dropped: the device read back as the default A100)."""
    (tmp_path / "c.yaml").write_text(_WHATIF)
    for suffix in ("yaml", "graphml"):
        assert main(["topo", str(tmp_path / "c.yaml"), "--export",
                     str(tmp_path / f"out.{suffix}")]) == 0
    want = load_cluster(str(tmp_path / "out.yaml"))
    got = load_cluster(str(tmp_path / "out.graphml"))
    assert got.model_dump(exclude={"graph"}) == want.model_dump(exclude={"graph"})
    assert got.device.memory_bandwidth_bytes_per_s == 4.0e12 and got.pue == 1.5
    assert got.price_per_device_hour == 2.0 and got.power_overhead == 1.1
    plan = {"plan.tp": 8}
    assert simulate("llama2-7b", str(tmp_path / "out.graphml"), **plan).step_time_s == \
        simulate("llama2-7b", str(tmp_path / "c.yaml"), **plan).step_time_s


@pytest.mark.parametrize("extra, key", [
    ("faults: {stragglers: [{device: 3, slowdown: 0.5}]}\n", "faults.stragglers"),
    ("faults: {links: [{between: [nic0.0, leaf0.0], bandwidth_factor: 0.1}]}\n",
     "faults.links"),
    ("mixed: [{nodes: [1], device: A100-SXM4-80GB}]\n", "mixed"),
])
def test_graphml_export_refuses_the_lists_graphml_cannot_hold(tmp_path, capsys, extra, key):
    (tmp_path / "c.yaml").write_text(_WHATIF + extra)
    out = tmp_path / "out.graphml"
    assert main(["topo", str(tmp_path / "c.yaml"), "--export", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"GraphML cannot hold whatif's {key} " in err
    assert "export to a .yaml file" in err and not out.exists()
    assert main(["topo", str(tmp_path / "c.yaml"), "--export", str(tmp_path / "o.yaml")]) == 0


# -- directed graphs: a link is full duplex ----------------------------------------------

def test_directed_graph_needs_both_directions_alike(tmp_path, capsys):
    both = _two_spine_graph().to_directed()
    assert simulate("gpt2", both).step_time_s == simulate("gpt2", _two_spine_graph()).step_time_s
    asym = both.copy()
    asym.edges["tor0", "hca0.1"]["bandwidth"] = 1e9
    with pytest.raises(ConfigError) as info:
        cluster_from_networkx(asym)
    assert info.value.key in ("edge 'hca0.1' - 'tor0'", "edge 'tor0' - 'hca0.1'")
    assert "differ (bandwidth: " in info.value.message and "full duplex" in info.value.message
    oneway = both.copy()
    oneway.remove_edge("tor0", "hca0.1")
    nx.write_graphml(oneway, tmp_path / "oneway.graphml")
    assert main(["topo", str(tmp_path / "oneway.graphml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("oneway.graphml: edge 'hca0.1' - 'tor0': the directed graph has the "
                        "edge 'hca0.1' -> 'tor0' but not 'tor0' -> 'hca0.1'; a link is full "
                        "duplex: give both directions the same attributes, or use an "
                        "undirected graph")


# -- GraphML and networkx: errors name nodes and edges; graph attributes read strictly ---

def _graphml_error(tmp_path, g: nx.Graph) -> str:
    nx.write_graphml(g, tmp_path / "g.graphml")
    with pytest.raises(ConfigError) as info:
        simulate("gpt2", str(tmp_path / "g.graphml"))
    return str(info.value)


def test_graphml_errors_name_the_node_or_the_edge(tmp_path):
    edge = r"g\.graphml: edge '(hca0\.1' - 'tor0|tor0' - 'hca0\.1)'"
    g = _two_spine_graph()
    g.edges["hca0.1", "tor0"]["type"] = "IB-XDR"
    assert re.search(edge + r" attribute 'type': unknown link 'IB-XDR'",
                     _graphml_error(tmp_path, g))
    g = _two_spine_graph()
    g.edges["hca0.1", "tor0"]["bandwidth"] = -1.0
    assert re.search(edge + r" attribute 'bandwidth': expected a number >= 0",
                     _graphml_error(tmp_path, g))
    g = _two_spine_graph()
    g.edges["hca0.1", "tor0"]["bandwidth"] = 0.0
    assert re.search(edge + r": link .* has no capacity", _graphml_error(tmp_path, g))
    g = _two_spine_graph()
    del g.nodes["core1"]["kind"]
    assert "g.graphml: node 'core1' attribute 'kind': required key is missing" in \
        _graphml_error(tmp_path, g)
    g = _two_spine_graph()
    g.graph["symmetry.shift_perod"] = 4
    assert "graph attribute 'symmetry.shift_perod': unknown key" in _graphml_error(tmp_path, g)


def test_graph_attributes_are_cluster_keys_and_unknown_ones_are_refused(tmp_path):
    g = _two_spine_graph()
    g.graph.update({"pue": 1.25, "devices_per_node": 4, "device.base": "A100-SXM4-80GB",
                    "device.memory_bandwidth": 1.0e12})
    del g.graph["device"]
    for n, kind in g.nodes(data="kind"):
        if kind == "device":
            del g.nodes[n]["node"]
    cluster = cluster_from_networkx(g)
    assert cluster.pue == 1.25 and cluster.nodes == 2 and cluster.devices_per_node == 4
    assert cluster.device.memory_bandwidth_bytes_per_s == 1.0e12
    for attrs, words in [({"color": "red"}, "color: unknown graph attribute (graph attributes"),
                         ({"pu": 1.5}, "pu: unknown graph attribute; did you mean 'pue'?"),
                         ({"devices_per_node": 3}, "devices_per_node = 3"),
                         ({"device.memory_bandwidth": 1e12}, "device: given both as a value")]:
        g = _two_spine_graph()
        g.graph.update(attrs)
        with pytest.raises(ConfigError, match=re.escape(words)):
            cluster_from_networkx(g)
    # A graph file named by a cluster file: its cluster keys are the cluster file's to
    # give, an unknown attribute is refused all the same.
    g = _two_spine_graph()
    g.graph["color"] = "red"
    nx.write_graphml(g, tmp_path / "fabric.graphml")
    (tmp_path / "c.yaml").write_text("name: gml\ngraph: fabric.graphml\n")
    with pytest.raises(ConfigError, match=r"fabric.graphml: color: unknown graph attribute"):
        load_cluster(str(tmp_path / "c.yaml"))


# -- sizes beside a graph: as strict as a generated cluster's -----------------------------

@pytest.mark.parametrize("line, words", [
    ("devices_per_node: 0", "c.yaml:2: devices_per_node: expected an integer > 0, got 0"),
    ("devices_per_node: 4.5", "c.yaml:2: devices_per_node: expected an integer > 0, got 4.5"),
    ('devices_per_node: "two"',
     "c.yaml:2: devices_per_node: expected an integer > 0, got 'two'"),
    ("devices_per_node: -3", "c.yaml:2: devices_per_node: expected an integer > 0, got -3"),
    ("nodes: 1.0", "c.yaml:2: nodes: expected an integer > 0 or 'auto', got 1.0"),
    ("nodes: true", "c.yaml:2: nodes: expected an integer > 0 or 'auto', got true"),
])
def test_sizes_beside_a_graph_are_checked_as_strictly_as_elsewhere(tmp_path, line, words):
    (tmp_path / "c.yaml").write_text(_GOOD.replace("device: A100-SXM4-80GB\n",
                                                   f"{line}\ndevice: A100-SXM4-80GB\n"))
    with pytest.raises(ConfigError) as info:
        load_cluster(str(tmp_path / "c.yaml"))
    assert str(info.value).endswith(words)


def test_unknown_link_type_and_short_lists_are_located_in_the_graph(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(_GOOD.replace("[a, sw], type: NVLink3", "[a, sw], type: NVLink9"))
    with pytest.raises(ConfigError) as info:
        simulate("gpt2", str(path), **{"plan.dp": 2})
    assert str(info.value).startswith(f"{path}:9: graph.links[0].type: unknown link 'NVLink9'")
    path.write_text(_GOOD.replace("[b, sw]", "[b, sw, a]"))
    with pytest.raises(ConfigError, match=r"c.yaml:10: graph.links\[1\].between: expected two "
                                          r"node names \(the link's ends\), got a list of 3"):
        load_cluster(str(path))
    path.write_text(_GOOD + "  routes:\n    - {path: [a]}\n")
    with pytest.raises(ConfigError, match=r"c.yaml:12: graph.routes\[0\].path: expected a path "
                                          r"of at least two node names \(device to device\), "
                                          r"got a list of 1"):
        load_cluster(str(path))
