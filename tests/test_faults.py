"""Heterogeneity and faults: stragglers, degraded and failed links (per-device mode).

Expectations are derived from the unfaulted run's own breakdown, never from numbers our
code printed before.
"""

from __future__ import annotations

import contextlib
import io
import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simwall import cli
from simwall.api import simulate
from simwall.errors import ConfigError

REL = 1e-9
STRAGGLER = [{"device": 3, "slowdown": 0.5}]


def _json_run(argv: list[str]) -> dict:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(argv)
    assert rc == 0, err.getvalue()
    return json.loads(out.getvalue())


# ---------------------------------------------------------------------------------------
# Stragglers


@pytest.mark.parametrize("workload,over", [
    ("bert-base", {}),                                          # dp 8 on one node
    ("bert-base", {"plan.dp_overlap": False}),
    ("gpt2", {"plan.zero": 0}),                                 # dp 8, bigger gradients
])
def test_half_speed_device_gates_the_step(workload, over):
    """One device at 0.5x in a DP=8 plan: its replica's compute and optimizer take twice
    as long and every gradient bucket waits for it.

    Bounds from the unfaulted breakdown (b0): the slow replica alone needs
    2 x (compute + optimizer) plus whatever TP/PP/bubble time it had (unscaled), so
    step >= that; the gradient reduction can only overlap more of the longer backward,
    so step <= step0 + compute0 + optimizer0 (everything else unchanged or hidden).
    """
    base = simulate(workload, per_device=True, **over)
    slow = simulate(workload, **over, **{"cluster.faults.stragglers": STRAGGLER})
    assert base.plan["dp"] == 8 and base.plan["tp"] == base.plan["pp"] == 1
    b0 = base.breakdown_s
    lower = 2 * (b0["compute"] + b0["optimizer"]) + b0["tp_comm"] + b0["pp_comm"] + b0["bubble"]
    upper = base.step_time_s + b0["compute"] + b0["optimizer"]
    assert lower * (1 - REL) <= slow.step_time_s <= upper * (1 + REL)
    assert math.isclose(slow.breakdown_s["compute"], 2 * b0["compute"], rel_tol=1e-9)
    # The compute part dominates these steps, so the step nearly doubles.
    assert slow.step_time_s / base.step_time_s > 1.8
    assert slow.critical["slowest_device"] == 3
    assert slow.critical["slowest_speed"] == 0.5
    assert slow.critical["device"] == 3 and slow.engine["mode"] == "per-device"


def test_straggler_from_set_matches_straggler_in_file(tmp_path):
    """``--set cluster.faults.stragglers=[...]`` and the same faults in the cluster YAML
    give the same JSON (byte for byte, apart from the cluster's name)."""
    text = (
        "name: one-node-straggler\nsource: test\ndevice: A100-SXM4-80GB\nnodes: 1\n"
        "devices_per_node: 8\nintra: {topology: nvswitch, link: NVLink3}\n"
        "inter: {topology: none, link: IB-HDR, nics_per_node: 8}\n"
        "host: {link: PCIe4, memory_capacity: 2.0e12}\n"
        "faults: {stragglers: [{device: 3, slowdown: 0.5}]}\n")
    path = tmp_path / "straggler.yaml"
    path.write_text(text)
    from_file = _json_run(["run", "bert-base", "--cluster", str(path), "--format", "json"])
    from_set = _json_run(["run", "bert-base", "--cluster", "single-node", "--format", "json",
                          "--set", "cluster.faults.stragglers=[{device: 3, slowdown: 0.5}]"])
    plain = _json_run(["run", "bert-base", "--cluster", "single-node", "--format", "json"])
    for d in (from_file, from_set):
        d.pop("cluster")
    assert from_file == from_set
    assert from_set["step_time_s"] > 1.8 * plain["step_time_s"]
    assert from_set["critical"]["slowest_device"] == 3


def test_straggler_in_one_stage_of_a_pipeline():
    """A slow device in the last stage of a PP=2 plan slows the step; its replica's
    stream ends last (in 1F1B that is stage 0's, waiting for the slow stage's gradients)."""
    over = {"plan.pp": 2, "plan.dp": 4, "training.global_batch": 256}
    base = simulate("bert-base", per_device=True, **over)
    slow = simulate("bert-base", **over, **{"cluster.faults.stragglers": [
        {"device": 7, "slowdown": 0.5}]})  # stage 1, replica 3
    assert slow.step_time_s > base.step_time_s * 1.2
    assert slow.critical["replica"] == 3 and slow.critical["slowest_device"] == 7


# ---------------------------------------------------------------------------------------
# Degraded and failed links

NIC3 = [{"between": ["dev3", "nic0.3"], "bandwidth_factor": 0.1}]


def test_degraded_nic_slows_only_plans_that_cross_it():
    # Crosses: TP 4 inside each node, DP 4 (two replicas per node) across two nodes:
    # device 3's DP group goes over its NIC nic0.3; DP not overlapped, so exposed.
    cross = {"plan.tp": 4, "plan.dp": 4, "cluster.nodes": 2, "plan.dp_overlap": False,
             "training.global_batch": 32, "training.micro_batch": 1}
    base = simulate("bert-base", "dgx-a100", per_device=True, **cross)
    slow = simulate("bert-base", "dgx-a100", per_device=True, **cross,
                    **{"cluster.faults.links": NIC3})
    assert slow.step_time_s > base.step_time_s * (1 + 1e-6)
    assert slow.breakdown_s["dp_comm"] > base.breakdown_s["dp_comm"] * 1.5
    # Does not cross: TP 4 x DP 2 inside one node of the same cluster; NICs unused.
    inside = {"plan.tp": 4, "plan.dp": 2, "cluster.nodes": 1, "plan.dp_overlap": False,
              "training.global_batch": 32, "training.micro_batch": 1}
    base_in = simulate("bert-base", "dgx-a100", per_device=True, **inside)
    slow_in = simulate("bert-base", "dgx-a100", per_device=True, **inside,
                       **{"cluster.faults.links": NIC3})
    assert math.isclose(slow_in.step_time_s, base_in.step_time_s, rel_tol=REL)


def test_failed_link_is_routed_around():
    """Factor 0 removes dev3 <-> nic0.3; dev3 still reaches the network through NVSwitch
    and another NIC, so the run succeeds, no faster than with the link."""
    cross = {"plan.tp": 4, "plan.dp": 4, "cluster.nodes": 2, "plan.dp_overlap": False,
             "training.global_batch": 32, "training.micro_batch": 1}
    base = simulate("bert-base", "dgx-a100", per_device=True, **cross)
    failed = simulate("bert-base", "dgx-a100", per_device=True, **cross, **{
        "cluster.faults.links": [{"between": ["dev3", "nic0.3"], "bandwidth_factor": 0.0}]})
    assert math.isfinite(failed.step_time_s)
    # Rerouted over NVSwitch and a NIC that other traffic also uses: strictly slower.
    assert failed.step_time_s > base.step_time_s * (1 + 1e-6)


def test_failed_links_that_disconnect_a_device_are_a_config_error(tmp_path):
    cut = [{"between": ["dev3", "nvsw0"], "bandwidth_factor": 0.0},
           {"between": ["dev3", "nic0.3"], "bandwidth_factor": 0.0}]
    with pytest.raises(ConfigError) as info:
        simulate("bert-base", "dgx-a100", **{"cluster.nodes": 2, "cluster.faults.links": cut,
                                             "training.micro_batch": 16})
    assert info.value.key == "faults.links"
    assert "dev3" in str(info.value)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(["run", "bert-base", "--cluster", "dgx-a100", "--set",
                       "cluster.nodes=2", "--set", "training.micro_batch=16", "--set",
                       ("cluster.faults.links=[{between: [dev3, nvsw0], bandwidth_factor: 0},"
                        " {between: [dev3, nic0.3], bandwidth_factor: 0}]")])
    assert rc == 2 and out.getvalue() == ""
    lines = err.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("simwall: error: ")
    assert "dgx-a100.yaml" in lines[0] and "faults.links" in lines[0]


def _drawn_graph(tmp_path) -> str:
    """A user-drawn cluster file: 4 nodes x 4 H100, an NVSwitch per node ('nvs0'), a NIC
    per GPU ('nic0' ... 'nic15') on one switch 'tor'; devices named 'gpu0' ..."""
    nodes, links = [], []
    for n in range(4):
        nodes += [f"    - {{name: gpu{4 * n + k}, kind: device, node: {n}}}" for k in range(4)]
    for n in range(4):
        nodes.append(f"    - {{name: nvs{n}, kind: switch, node: {n}}}")
        for k in range(4):
            i = 4 * n + k
            nodes.append(f"    - {{name: nic{i}, kind: nic, node: {n}, rail: {k}}}")
            links += [f"    - {{between: [gpu{i}, nvs{n}], type: NVLink4}}",
                      f"    - {{between: [gpu{i}, nic{i}], type: IB-NDR, latency: 0.0}}",
                      f"    - {{between: [nic{i}, tor], type: IB-NDR}}"]
    nodes.append("    - {name: tor, kind: switch}")
    path = tmp_path / "drawn.yaml"
    path.write_text("name: drawn\ndevice: H100-SXM5-80GB\nintra: {link: NVLink4}\n"
                    "inter: {link: IB-NDR, nics_per_node: 4}\nhost: {link: PCIe5}\ngraph:\n"
                    "  nodes:\n" + "\n".join(nodes) + "\n  links:\n" + "\n".join(links) + "\n")
    return str(path)


def test_degraded_link_of_a_user_drawn_graph_is_named_by_the_graph_s_own_ids(tmp_path):
    """faults.links names an explicit graph's nodes as its file does ('nic0', 'tor') or
    as runs print them ('dev0'); a degraded NIC uplink slows the data-parallel traffic
    that crosses it, per device as symmetric (the graph declares no symmetry)."""
    drawn = _drawn_graph(tmp_path)
    dp = {"plan.tp": 1, "plan.pp": 1}             # DP 16 over the 4 nodes' NICs
    half = [{"between": ["nic0", "tor"], "bandwidth_factor": 0.5}]
    base = simulate("llama2-7b", drawn, per_device=True, **dp)
    fault = "cluster.faults.links=[{between: [nic0, tor], bandwidth_factor: 0.5}]"
    slow = _json_run(["run", "llama2-7b", "--cluster", drawn, "--set", "plan.tp=1",
                      "--set", fault, "--per-device", "--format", "json"])
    assert slow["step_time_s"] > base.step_time_s * (1 + 1e-6)
    assert slow["breakdown_s"]["dp_comm"] > base.breakdown_s["dp_comm"] * 1.5
    assert simulate("llama2-7b", drawn, **dp, **{"cluster.faults.links": half}).step_time_s \
        == slow["step_time_s"]
    for ends in (["gpu0", "nvs0"], ["dev0", "nvs0"]):        # the file's name, simwall's
        r = simulate("llama2-7b", drawn, **dp, **{"cluster.faults.links": [
            {"between": ends, "bandwidth_factor": 0.5}]})
        assert math.isfinite(r.step_time_s)
    # The run names the graph's links as the file does.
    busiest = simulate("llama2-7b", drawn, **{"plan.tp": 4}).critical["busiest_link"]["link"]
    assert busiest.split("->")[0].startswith("gpu"), busiest
    with pytest.raises(ConfigError) as info:
        simulate("llama2-7b", drawn, **dp, **{"cluster.faults.links": [
            {"between": ["nicc0", "tor"], "bandwidth_factor": 0.5}]})
    assert info.value.key == "faults.links[0].between"
    assert "'nicc0'" in info.value.message and "'nic0'" in info.value.message
    assert "'gpu0'" in info.value.message and "leaf1.0" not in info.value.message
    with pytest.raises(ConfigError, match=r"no link between gpu0 and tor \(gpu0 links to: "
                                          r"nvs0, nic0, host0\)"):
        simulate("llama2-7b", drawn, **dp, **{"cluster.faults.links": [
            {"between": ["gpu0", "tor"], "bandwidth_factor": 0.5}]})


# ---------------------------------------------------------------------------------------
# Per-device and symmetric modes agree on a symmetric cluster

def assert_modes_agree(workload: str, cluster: str | None, over: dict):
    """Symmetric and per-device runs of one config agree on the step time within 1%;
    returns both results for further checks."""
    sym = simulate(workload, cluster, **over)
    per = simulate(workload, cluster, per_device=True, **over)
    assert math.isclose(per.step_time_s, sym.step_time_s, rel_tol=0.01), (
        sym.breakdown_s, per.breakdown_s)
    return sym, per


@pytest.mark.parametrize("workload,cluster,over", [
    ("bert-base", None, {}),
    ("gpt2", None, {}),
    ("bert-base", "dgx-a100", {"plan.tp": 2, "plan.pp": 2, "cluster.nodes": 2,
                               "training.global_batch": 256}),
    ("bert-large", "dgx-a100", {"plan.tp": 4, "plan.pp": 2, "cluster.nodes": 2,
                                "training.global_batch": 512, "training.micro_batch": 1,
                                "plan.zero": 3}),
    # Stages of half a node on 4 nodes: boundaries alternate between NVLink and the
    # network, so stage 0 cannot stand for every stage (Topology.shift_invariant).
    ("bert-base", "dgx-a100", {"plan.tp": 1, "plan.pp": 8, "plan.dp": 4, "cluster.nodes": 4,
                               "training.global_batch": 4, "training.micro_batch": 1,
                               "plan.dp_overlap": False}),
    # DP groups across 8 leaves of 4 nodes (radix-8 leaves), so the symmetric run costs
    # them on a two-leaf window (collectives.symmetry_window); per-device costs them all.
    ("bert-large", "dgx-a100", {"plan.tp": 8, "plan.pp": 1, "cluster.nodes": 32,
                          "cluster.inter.switch_radix": 8, "training.global_batch": 256}),
    ("bert-large", "dgx-a100", {"plan.tp": 4, "plan.pp": 2, "cluster.nodes": 32,
                          "cluster.inter.switch_radix": 8, "cluster.inter.rail_optimized":
                          False, "training.global_batch": 256, "plan.zero": 3}),
])
def test_per_device_matches_symmetric(workload, cluster, over):
    sym, per = assert_modes_agree(workload, cluster, over)
    assert sym.engine["mode"] == "symmetric" and per.engine["mode"] == "per-device"
    assert sym.breakdown_s == pytest.approx(per.breakdown_s, rel=0.01, abs=1e-6)
    assert math.isclose(per.memory["peak_bytes"], sym.memory["peak_bytes"], rel_tol=0.01)


def _invariants_configs():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from test_invariants import configs

    return configs()


@settings(deadline=None, derandomize=True, max_examples=100,
          suppress_health_check=[HealthCheck.too_slow])
@given(cfg=_invariants_configs())
def test_per_device_matches_symmetric_on_random_plans(cfg):
    workload, cluster, over = cfg
    assert_modes_agree(workload, cluster, over)


# ---------------------------------------------------------------------------------------
# Located errors: one key-path style ([i] for list items) and the line of that item


_FAULTY = (
    "name: faulty\nsource: test\ndevice: A100-SXM4-80GB\nnodes: 1\n"
    "devices_per_node: 8\nintra: {topology: nvswitch, link: NVLink3}\n"
    "inter: {topology: none, link: IB-HDR, nics_per_node: 8}\n"
    "host: {link: PCIe4, memory_capacity: 2.0e12}\n"
    "faults:\n"                                   # line 9
    "  stragglers:\n"
    "    - device: 1\n"                           # line 11
    "      slowdown: 0.5\n"
    "    - device: {device}\n"                    # line 13
    "      slowdown: {slowdown}\n"                # line 14
    "  links:\n"
    "    - between: [dev0, nvsw0]\n"              # line 16
    "      bandwidth_factor: 0.5\n"
    "    - between: [{a}, {b}]\n"                 # line 18
    "      bandwidth_factor: 0.5\n")


def _faulty(tmp_path, **fields) -> str:
    values = {"device": 2, "slowdown": 0.5, "a": "dev1", "b": "nvsw0", **fields}
    path = tmp_path / "faulty.yaml"
    path.write_text(_FAULTY.replace("{device}", str(values["device"]))
                    .replace("{slowdown}", str(values["slowdown"]))
                    .replace("{a}", values["a"]).replace("{b}", values["b"]))
    return str(path)


def test_faulty_cluster_template_is_valid(tmp_path):
    r = simulate("bert-base", _faulty(tmp_path))
    assert r.critical["slowest_device"] == 1


@pytest.mark.parametrize("fields, key, line", [
    ({"slowdown": 2}, "faults.stragglers[1].slowdown", 14),          # schema check
    ({"device": 99}, "faults.stragglers[1].device", 13),             # check after resolve
    ({"a": "nic9.9"}, "faults.links[1].between", 18),                # topology build
    ({"b": "dev5"}, "faults.links[1].between", 18),                  # no such link
])
def test_fault_errors_name_list_items_in_one_style_with_their_line(tmp_path, fields, key,
                                                                   line):
    path = _faulty(tmp_path, **fields)
    with pytest.raises(ConfigError) as exc:
        simulate("bert-base", path)
    err = exc.value
    assert (err.source, err.key, err.line) == (path, key, line), str(err)
    assert str(err).startswith(f"{path}:{line}: {key}: ")


@settings(deadline=None, derandomize=True, max_examples=40,
          suppress_health_check=[HealthCheck.too_slow])
@given(nodes=st.sampled_from([16, 24, 32]), per_node=st.sampled_from([2, 4]),
       radix=st.sampled_from([4, 6, 8]), over=st.sampled_from([1.0, 2.0, 3.0]),
       rail=st.booleans(), tp=st.sampled_from([1, 2]), pp=st.sampled_from([1, 2]),
       zero=st.sampled_from([0, 1, 3]),
       collective=st.sampled_from(["auto", "ring", "tree", "hierarchical"]))
def test_symmetric_matches_per_device_on_small_radix_fat_trees(nodes, per_node, radix, over,
                                                               rail, tp, pp, zero,
                                                               collective):
    """Leaves of a few nodes, uplinks 1:1 to 3:1: DP groups span many leaves (symmetry
    windows), pipeline sends and stages share oversubscribed leaves. The symmetric run
    must agree with costing every group of every stage."""
    dp = nodes * per_node // (tp * pp)
    over_ = {"cluster.nodes": nodes, "cluster.devices_per_node": per_node,
             "cluster.inter.nics_per_node": per_node, "cluster.inter.switch_radix": radix,
             "cluster.inter.oversubscription": over, "cluster.inter.rail_optimized": rail,
             "plan.tp": tp, "plan.pp": pp, "plan.dp": dp, "plan.zero": zero,
             "plan.collective": collective, "training.micro_batch": 1,
             "training.global_batch": 2 * dp}
    assert_modes_agree("bert-large", "dgx-a100", over_)


@settings(deadline=None, derandomize=True, max_examples=30,
          suppress_health_check=[HealthCheck.too_slow])
@given(dims=st.sampled_from([(4, 4, 4), (2, 4, 4), (4, 4, 2), (8, 8)]),
       tp=st.sampled_from([1, 2, 4]), pp=st.sampled_from([1, 2, 4]),
       zero=st.sampled_from([0, 1, 3]), collective=st.sampled_from(["auto", "ring", "tree"]))
def test_symmetric_matches_per_device_on_a_torus(dims, tp, pp, zero, collective):
    """On a torus routes cross other chips' links, and a stage shift is a translation only
    along the slowest axis: the symmetric run must still agree with per-device costing."""
    dp = math.prod(dims) // (tp * pp)
    over = {"cluster.nodes": math.prod(dims) // 4, "cluster.inter.dims": list(dims),
            "plan.tp": tp, "plan.pp": pp, "plan.dp": dp, "plan.zero": zero,
            "plan.collective": collective, "training.micro_batch": 1,
            "training.global_batch": 2 * dp}
    assert_modes_agree("bert-large", "tpu-v4", over)
