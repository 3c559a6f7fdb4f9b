"""Context parallelism (plan.cp): layout, compute and memory per CP rank, the K/V exchange,
the search axis, and the physics the model must keep."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from simwall import api
from simwall.config import ModelSpec, TrainingSpec
from simwall.costing.groups import cp_groups, dp_groups, tp_groups
from simwall.errors import ConfigError
from simwall.model import memory, ops
from simwall.plan import Plan, frameworks_for
from simwall.studies.search import cp_degrees, enumerate_plans


def _plan(**kw) -> Plan:
    base: dict = {"tp": 2, "pp": 2, "dp": 2, "virtual_stages": 1, "sequence_parallel": True,
                  "zero": 1, "recompute": "selective", "schedule": "1f1b", "micro_batch": 1,
                  "global_batch": 8, "stage_layers": (2, 2)}
    base.update(kw)
    return Plan(**base)


def _model(**kw) -> ModelSpec:
    base: dict = {"kind": "gpt", "layers": 4, "hidden": 1024, "heads": 16, "kv_heads": 4,
                  "ffn_hidden": 4096, "vocab": 32000, "seq_len": 8192, "gated_mlp": True,
                  "norm": "rmsnorm", "dropout": False, "attention": "flash",
                  "tied_embeddings": False}
    base.update(kw)
    return ModelSpec(**base)


TRAIN = TrainingSpec(global_batch=8, micro_batch=1, precision="bf16", optimizer="adamw")


# --- layout ---------------------------------------------------------------------------


def test_ranks_are_ordered_tp_then_cp_then_dp_then_pp():
    """Megatron-Core's order "tp-cp-ep-dp-pp": a CP group is tp apart inside the first
    tp x cp devices; the DP x CP group holds every rank with one TP rank."""
    p = _plan(cp=2)
    assert p.world == 16 and p.dp_cp == 4
    assert cp_groups(p, 0)[:2] == [[0, 2], [1, 3]]
    assert tp_groups(p, 0)[:2] == [[0, 1], [2, 3]]
    assert dp_groups(p, 0) == [[0, 2, 4, 6], [1, 3, 5, 7]]
    assert cp_groups(p, 1)[0] == [8, 10]
    for dev in range(p.world):
        assert p.device_of(*p.rank_of(dev)) == dev


def test_cp_one_keeps_the_old_layout():
    p = _plan()
    assert [p.device_of(s, d, t) for s in range(2) for d in range(2) for t in range(2)] \
        == list(range(8))
    # The JSON plan always names cp (1 here), so records of a sweep over it are complete.
    assert p.as_dict()["cp"] == 1


# --- compute and memory ---------------------------------------------------------------


def test_attention_flop_per_rank_is_total_over_cp_and_model_flop_unchanged():
    model = _model()
    one, two = _plan(), _plan(cp=2)

    def flop(plan, name):
        return sum(o.flop for o in ops.layer_ops(model, TRAIN, plan, "fwd") if o.name == name)

    assert flop(two, ops.FLASH_ATTENTION) == pytest.approx(flop(one, ops.FLASH_ATTENTION) / 2)
    assert flop(two, "mlp_up") == pytest.approx(flop(one, "mlp_up") / 2)
    # Hardware FLOP over all devices: the same work, spread over twice the devices.
    assert ops.hardware_flop_per_step(model, TRAIN, two) == pytest.approx(
        ops.hardware_flop_per_step(model, TRAIN, one))


@settings(max_examples=40, deadline=None)
@given(cp=st.sampled_from([1, 2, 4, 8]), tp=st.sampled_from([1, 2, 4]),
       recompute=st.sampled_from(["none", "selective", "full"]),
       attention=st.sampled_from(["flash", "eager"]), sp=st.booleans(),
       seq=st.sampled_from([4096, 8192, 32768]), comm=st.sampled_from(["p2p", "all_gather"]))
def test_more_cp_never_raises_activation_memory(cp, tp, recompute, attention, sp, seq, comm):
    """Each CP rank keeps the activations of s/cp tokens: doubling cp never raises a
    device's activation memory (nor its buffers)."""
    model = _model(seq_len=seq, attention=attention)
    a = _plan(cp=cp, tp=tp, recompute=recompute, sequence_parallel=sp and tp > 1,
              cp_comm=comm)
    b = replace(a, cp=2 * cp)
    for stage in range(a.pp):
        assert memory.stage_activation_bytes(model, TRAIN, b, stage) <= \
            memory.stage_activation_bytes(model, TRAIN, a, stage)
    if cp > 1:
        assert memory.cp_kv_buffer_bytes(model, TRAIN, b) <= \
            memory.cp_kv_buffer_bytes(model, TRAIN, a) * (1 if comm == "p2p" else 2)


def test_zero_shards_over_dp_times_cp():
    model = _model()
    m1 = memory.device_memory(model, TRAIN, _plan(zero=1))[0]
    m2 = memory.device_memory(model, TRAIN, _plan(zero=1, cp=2))[0]
    assert m2.optimizer_bytes == pytest.approx(m1.optimizer_bytes / 2)


# --- whole steps ----------------------------------------------------------------------


def test_llama3_405b_runs_with_cp_2():
    r = api.simulate("llama3-405b", **{"plan.cp": 2})
    assert r.plan["cp"] == 2 and r.world == 8192 and r.plan["dp"] == 32
    assert r.memory["fits"]


def test_llama3_405b_128k_runs_on_its_default_cluster():
    r = api.simulate("llama3-405b-128k")
    assert r.plan["cp"] == 16 and r.plan["tp"] == 8 and r.plan["pp"] == 16
    assert r.world == 16384 and r.memory["fits"]
    assert r.step_time_s > 0


def test_cp_1_equals_no_cp_key():
    over = {"plan.tp": 2, "cluster.nodes": 1, "training.global_batch": 32}
    a = api.simulate("llama3-8b", "dgx-h100", **over)
    b = api.simulate("llama3-8b", "dgx-h100", **over, **{"plan.cp": 1,
                                                         "plan.cp_comm": "all_gather"})
    assert a.step_time_s == b.step_time_s and a.memory == b.memory


def test_gradients_are_reduced_with_dp_1_and_cp_2():
    """dp 1, cp 2: the two CP ranks hold the same parameters, so their gradients are
    still reduced (DP x CP group of 2)."""
    r = api.simulate("llama3-8b", "dgx-h100", **{
        "plan.tp": 4, "plan.cp": 2, "plan.dp": 1, "cluster.nodes": 1,
        "training.global_batch": 8, "plan.dp_overlap": False})
    assert r.breakdown_s["dp_comm"] > 0


@settings(max_examples=12, deadline=None)
@given(comm=st.sampled_from(["p2p", "all_gather"]), link=st.sampled_from(["intra", "inter"]),
       cp=st.sampled_from([2, 4, 8]), tp=st.sampled_from([1, 2, 4]))
def test_doubling_link_bandwidth_never_slows_a_cp_step(comm, link, cp, tp):
    assume(cp * tp <= 16)                       # two 8-GPU nodes
    base_link = {"intra": "NVLink4", "inter": "IB-NDR"}[link]
    bw = {"intra": 450e9, "inter": 50e9}[link]
    over = {"plan.tp": tp, "plan.cp": cp, "plan.cp_comm": comm, "cluster.nodes": 2,
            "training.global_batch": 16, "model.seq_len": 32768}
    base = api.simulate("llama3-8b", "dgx-h100", **over)
    fast = api.simulate("llama3-8b", "dgx-h100", **over, **{
        f"cluster.{link}.link": {"base": base_link, "bandwidth": 2 * bw}})
    assert fast.step_time_s <= base.step_time_s


def test_a_slow_network_exposes_the_ring():
    """The ring hides under the attention only while a step's send is shorter than a
    step's attention: on a 1 GB/s inter-node link a CP group across nodes is exposed far
    more (tp 1: the exposed ring is all of tp_comm)."""
    over = {"plan.tp": 1, "plan.cp": 16, "cluster.nodes": 2, "training.global_batch": 16,
            "model.seq_len": 32768}
    fast = api.simulate("llama3-8b", "dgx-h100", **over)
    slow = api.simulate("llama3-8b", "dgx-h100", **over, **{
        "cluster.inter.link": {"base": "IB-NDR", "bandwidth": 1e9}})
    assert slow.breakdown_s["tp_comm"] > 10 * fast.breakdown_s["tp_comm"] > 0.0
    assert slow.breakdown_s["compute"] == fast.breakdown_s["compute"]


def test_per_device_run_equals_symmetric_run_with_cp():
    over = {"plan.tp": 2, "plan.cp": 2, "plan.pp": 2, "cluster.nodes": 2,
            "training.global_batch": 16, "plan.cp_comm": "p2p"}
    sym = api.simulate("llama3-8b", "dgx-h100", **over)
    dev = api.simulate("llama3-8b", "dgx-h100", per_device=True, **over)
    assert dev.step_time_s == pytest.approx(sym.step_time_s, rel=1e-9)


def test_a_straggler_in_a_cp_group_slows_its_replica():
    over = {"plan.tp": 2, "plan.cp": 2, "cluster.nodes": 1, "training.global_batch": 16}
    base = api.simulate("llama3-8b", "dgx-h100", **over)
    # device 3: TP rank 1 of CP rank 1 in DP replica 0
    slow = api.simulate("llama3-8b", "dgx-h100", **over, **{
        "cluster.faults.stragglers": [{"device": 3, "slowdown": 0.5}]})
    assert slow.step_time_s > 1.5 * base.step_time_s * 0.9
    assert slow.critical["replica"] == 0


def test_all_gather_exposes_more_than_the_overlapped_ring():
    """Megatron-Core: the ring is overlapped with attention, the all-gather is not."""
    over = {"plan.tp": 2, "plan.cp": 4, "cluster.nodes": 1, "training.global_batch": 8,
            "model.seq_len": 32768}
    ring = api.simulate("llama3-8b", "dgx-h100", **over, **{"plan.cp_comm": "p2p"})
    gather = api.simulate("llama3-8b", "dgx-h100", **over, **{"plan.cp_comm": "all_gather"})
    assert ring.breakdown_s["tp_comm"] < gather.breakdown_s["tp_comm"]


def test_cp_must_split_the_sequence_in_2cp_chunks():
    with pytest.raises(ConfigError, match="plan.cp"):
        api.simulate("llama3-8b", "dgx-h100", **{"plan.cp": 3, "plan.tp": 1,
                                                   "cluster.nodes": 3,
                                                   "training.global_batch": 24})


# --- search and frameworks ------------------------------------------------------------


def test_search_tries_cp_only_where_chunks_hide_the_ring():
    from simwall.config import load_cluster, load_workload
    long_ = load_workload("llama3-8b")
    short = load_workload("llama2-7b")
    h100 = load_cluster("dgx-h100").model_copy(update={"nodes": 8})
    a100 = load_cluster("dgx-a100").model_copy(update={"nodes": 8})
    # llama3-8b on H100: chunks of >= 550 tokens (989 TFLOP/s / 450 GB/s x 8 / 32 heads).
    assert cp_degrees(long_, h100, 64) == (1, 2, 4, 8)
    # llama2-7b (MHA, 4096 tokens) on A100: >= 1040 tokens (312 TFLOP/s / 300 GB/s).
    assert cp_degrees(short, a100, 64) == (1, 2)
    short_seq = short.model_copy(update={"model": short.model.model_copy(
        update={"seq_len": 2048}), "plan": short.plan.model_copy(update={"cp": 2})})
    assert cp_degrees(short_seq, a100, 64) == (1, 2)     # the workload's own plan.cp


def test_enumerated_cp_plans_resolve_to_the_devices():
    from simwall.config import load_cluster, load_workload
    wl = load_workload("llama3-8b")
    cl = load_cluster("dgx-h100").model_copy(update={"nodes": 2})
    plans = [p for p in enumerate_plans(wl, cl) if p.cp > 1]
    assert {p.cp for p in plans} == {2, 4, 8}     # 8192 / 16 = 512 < 550 tokens a rank
    assert all(p.world == 16 for p in plans)


def test_frameworks_running_cp():
    p = _plan(cp=2, zero=1)
    assert "megatron" in frameworks_for(p) and "deepspeed" not in frameworks_for(p)
    assert "fsdp2" in frameworks_for(replace(p, zero=2, pp=1, stage_layers=(4,)))
    assert "fsdp" not in frameworks_for(replace(p, tp=1, pp=1, zero=2, stage_layers=(4,)))
