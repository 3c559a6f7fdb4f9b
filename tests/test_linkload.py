"""Link loads of one step (simwall.costing.linkload): hand-checked byte counts and the busiest link.

The expected numbers come from the ring's data movement (Thakur, Rabenseifner & Gropp
2005, Sec. 4: a ring all-reduce sends 2(p-1)/p of the buffer from every rank to the
next) and from counting the collectives Megatron runs (Narayanan et al. 2021, Sec. 2.3:
two TP all-reduces per layer forward, two backward), not from numbers simwall printed.
"""

from __future__ import annotations

import pytest

from simwall import api
from simwall.config import PRECISION_BYTES, load_cluster
from simwall.costing import Traffic, busiest_link, link_bytes, stage_cost, step_link_bytes
from simwall.model.memory import stage_params
from simwall.net import build_topology

N_BYTES = 1e9


@pytest.fixture(scope="module")
def node():
    return build_topology(load_cluster("single-node"))


@pytest.fixture(scope="module")
def two_nodes():
    return build_topology(load_cluster("dgx-a100", [("nodes", 2)]))


@pytest.mark.parametrize("p", [2, 4])
def test_ring_all_reduce_puts_2_p_minus_1_over_p_on_every_ring_edge(node, p):
    loads = link_bytes(node, [Traffic("all_reduce", (tuple(range(p)),), N_BYTES, "ring", 1)])
    # NVSwitch: dev i -> nvsw0 -> dev i+1; each device's port up and down is one ring hop.
    expected = {(("dev", i), ("nvsw", 0)) for i in range(p)} | \
               {(("nvsw", 0), ("dev", i)) for i in range(p)}
    assert set(loads) == expected
    for edge, carried in loads.items():
        assert carried == pytest.approx(2 * (p - 1) / p * N_BYTES, rel=1e-12), edge


def test_counts_multiply_and_traffic_adds_up(node):
    ring = (0, 1, 2, 3)
    once = link_bytes(node, [Traffic("all_gather", (ring,), N_BYTES, "ring", 1)])
    many = link_bytes(node, [Traffic("all_gather", (ring,), N_BYTES, "ring", 3),
                             Traffic("all_gather", (ring,), N_BYTES, "ring", 2)])
    assert once[(("dev", 0), ("nvsw", 0))] == pytest.approx(3 / 4 * N_BYTES)
    assert set(many) == set(once)
    for edge in once:
        assert many[edge] == pytest.approx(5 * once[edge], rel=1e-12)


def test_busiest_link_is_the_slowest_to_drain_not_the_most_bytes(two_nodes):
    # dev0 <-> dev8 (two nodes): the ring hop crosses NIC and leaf links, slower than NVLink.
    loads = link_bytes(two_nodes, [Traffic("all_reduce", ((0, 8),), N_BYTES, "ring", 1)])
    best = busiest_link(two_nodes, [loads])
    assert best["kind"] in ("nic", "net")
    assert best["bytes"] == pytest.approx(N_BYTES)          # 2(p-1)/p = 1 for p = 2
    assert best["busy_s"] == pytest.approx(best["bytes"] / best["capacity_bytes_per_s"])
    assert "->" in best["link"]
    slowest = min(two_nodes.capacity(e) for e in loads)
    assert best["capacity_bytes_per_s"] == slowest


def test_no_traffic_has_no_busiest_link(node):
    assert busiest_link(node, [link_bytes(node, [])]) is None
    # A group of one device moves nothing.
    assert link_bytes(node, [Traffic("all_reduce", ((3,),), N_BYTES, "ring", 1)]) == {}


def _prepared(workload: str, cluster: str, **over):
    prep = api.prepare(workload, cluster, over)
    base = {s: stage_cost(prep.workload.model, prep.workload.training, prep.plan,
                           prep.device, prep.topology, s, symmetric=True)
            for s in range(prep.plan.pp)}
    return prep, base


def test_tp_step_bytes_count_every_layer_and_micro_batch():
    """TP 8 on one node, no SP, no recompute: per micro-batch 4 all-reduces per layer
    plus the embedding's (forward) and the LM head's (backward) all-reduce."""
    prep, base = _prepared("llama2-7b", "single-node", **{
        "plan.tp": 8, "plan.pp": 1, "plan.dp": 1, "plan.sequence_parallel": False,
        "plan.recompute": "none", "plan.collective": "ring", "training.global_batch": 4,
        "training.micro_batch": 2})
    model, training, plan = prep.workload.model, prep.workload.training, prep.plan
    [loads] = step_link_bytes(model, training, plan, prep.topology, base, symmetric=True)
    act = plan.micro_batch * model.seq_len * model.hidden * PRECISION_BYTES[training.precision]
    per_mb = 4 * model.layers + 2
    expected = plan.micro_batches * per_mb * 2 * 7 / 8 * act
    assert loads[(("dev", 0), ("nvsw", 0))] == pytest.approx(expected, rel=1e-12)


def test_dp_step_bytes_are_the_gradients_once():
    """Pure DP (ZeRO 0) on one node: the ring all-reduce of all gradient buckets, once."""
    prep, base = _prepared("bert-base", "single-node", **{"plan.collective": "ring"})
    model, training, plan = prep.workload.model, prep.workload.training, prep.plan
    assert (plan.tp, plan.pp, plan.dp, plan.zero) == (1, 1, 8, 0)
    [loads] = step_link_bytes(model, training, plan, prep.topology, base, symmetric=True)
    grads = stage_params(model, plan, 0) * PRECISION_BYTES[training.grad_precision_]
    assert loads[(("dev", 0), ("nvsw", 0))] == pytest.approx(2 * 7 / 8 * grads, rel=1e-12)


def test_offload_puts_gradients_and_weights_on_the_host_link():
    prep, base = _prepared("bert-large", "single-node", **{
        "plan.dp": 1, "plan.tp": 8, "plan.offload": "optimizer", "training.global_batch": 32})
    model, training, plan = prep.workload.model, prep.workload.training, prep.plan
    [loads] = step_link_bytes(model, training, plan, prep.topology, base, symmetric=True)
    params = stage_params(model, plan, 0)
    to_host = (("dev", 0), ("host", 0))
    assert loads[to_host] == pytest.approx(params * PRECISION_BYTES[training.grad_precision_])
    assert loads[to_host[::-1]] == pytest.approx(params * PRECISION_BYTES[training.precision])


def test_dp_heavy_multi_node_plan_is_paced_by_the_network():
    r = api.simulate("bert-large", "dgx-a100", **{
        "cluster.nodes": 4, "plan.tp": 1, "plan.pp": 1, "plan.dp": 32,
        "training.global_batch": 256, "training.micro_batch": 8})
    link = r.critical["busiest_link"]
    assert link["kind"] in ("nic", "net", "spine"), link
    assert link["link_class"] == "IB-HDR"
    assert r.step_time_s >= link["busy_s"]


def test_tp_heavy_single_node_plan_is_paced_by_nvlink():
    r = api.simulate("llama2-7b", "single-node", **{"plan.tp": 8, "plan.pp": 1, "plan.dp": 1})
    link = r.critical["busiest_link"]
    assert link["kind"] == "intra" and link["link_class"] == "NVLink3", link
    assert link["link"].startswith("dev") or link["link"].startswith("nvsw")
    assert r.step_time_s >= link["busy_s"]


def test_busiest_link_is_in_the_json_and_the_table():
    from simwall.report import render_table

    r = api.simulate("bert-base")
    doc = r.to_dict()
    link = doc["critical"]["busiest_link"]
    assert set(link) == {"link", "kind", "link_class", "bytes", "capacity_bytes_per_s",
                         "busy_s"}
    assert "busiest link" in render_table(r) and link["link"] in render_table(r)


def test_per_device_mode_sees_at_least_the_symmetric_load():
    over = {"plan.tp": 2, "plan.pp": 2, "plan.dp": 4, "cluster.nodes": 2,
            "training.global_batch": 32}
    sym = api.simulate("llama2-7b", "dgx-a100", **over).critical["busiest_link"]
    per = api.simulate("llama2-7b", "dgx-a100", per_device=True, **over).critical["busiest_link"]
    assert per["busy_s"] >= sym["busy_s"] * (1 - 1e-9)
