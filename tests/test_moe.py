"""Mixture of experts: placement, parameters, ops, memory sharding, the plan's ep."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simwall.api import simulate
from simwall.config import ModelSpec, TrainingSpec
from simwall.config.files import load_workload
from simwall.errors import ConfigError, SimwallError
from simwall.hardware.catalog import get_device
from simwall.model import memory as M
from simwall.model import moe
from simwall.model import ops as W
from simwall.model.optime import op_time_s
from simwall.plan import Plan

ROUTER_OPS = {"moe_router", "moe_topk", "moe_permute", "moe_unpermute"}


def _plan(model: ModelSpec, tp: int = 1, ep: int = 1, dp: int = 1, mb: int = 1,
          recompute: str = "none") -> Plan:
    return Plan(tp=tp, pp=1, dp=dp, virtual_stages=1, sequence_parallel=tp > 1, zero=1,
                recompute=recompute, schedule="1f1b", micro_batch=mb, global_batch=mb * dp,
                stage_layers=(model.layers,), ep=ep)


def test_mixtral_parameters_match_the_paper():
    # Jiang et al. 2024, "Mixtral of Experts": 46.7B parameters, 12.9B active per token.
    model = load_workload("mixtral-8x7b").model
    total = M.total_params(model)
    idle_experts = model.layers * (model.experts - model.top_k) * moe.expert_params(model) \
        // model.experts
    assert total == pytest.approx(46.7e9, rel=0.005)
    assert total - idle_experts == pytest.approx(12.9e9, rel=0.005)


@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize("recompute", ["none", "selective", "full"])
def test_one_expert_top1_costs_the_dense_mlp_plus_the_router(gated, recompute):
    """With one expert and top-1 routing an MoE layer runs the dense layer's ops plus the
    router's (router GEMM, top-k, permute, un-permute), op for op."""
    dense = ModelSpec(layers=2, hidden=2048, heads=16, vocab=32000, seq_len=2048,
                      gated_mlp=gated)
    one = dense.model_copy(update={"experts": 1, "top_k": 1})
    training = TrainingSpec(global_batch=2, micro_batch=2)
    dev = get_device("H100-SXM5-80GB")
    for pass_ in ("fwd", "bwd", "recompute"):
        d_ops = W.layer_ops(dense, training, _plan(dense, mb=2, recompute=recompute), pass_)
        m_ops = W.layer_ops(one, training, _plan(one, mb=2, recompute=recompute), pass_,
                            moe=True)
        extra = [op for op in m_ops if op.name.split(".")[0] in ROUTER_OPS]
        rest = [op for op in m_ops if op.name.split(".")[0] not in ROUTER_OPS]
        assert rest == list(d_ops)
        t_d = sum(op_time_s(op, dev, "bf16") for op in d_ops)
        t_m = sum(op_time_s(op, dev, "bf16") for op in m_ops)
        assert t_m == pytest.approx(t_d + sum(op_time_s(op, dev, "bf16") for op in extra))
        if pass_ == "fwd":
            assert {op.name for op in extra} == ROUTER_OPS


def test_dense_model_has_no_moe_layers():
    model = load_workload("llama3-8b").model
    assert not model.moe
    assert moe.moe_layer_count(model, 0, model.layers) == 0
    with pytest.raises(SimwallError, match="model.experts"):
        W.layer_ops(model, TrainingSpec(global_batch=1), _plan(model), "fwd", moe=True)


def test_placement_dense_prefix_and_frequency():
    model = ModelSpec(layers=10, hidden=256, heads=4, vocab=100, seq_len=64, experts=4,
                      dense_layers=3, moe_layer_freq=2)
    assert [moe.is_moe_layer(model, i) for i in range(10)] == \
        [False, False, False, True, False, True, False, True, False, True]
    assert moe.moe_layer_count(model, 0, 10) == 4


@settings(max_examples=30, deadline=None)
@given(ep_pow=st.integers(0, 3), k=st.integers(1, 2))
def test_more_expert_parallelism_never_holds_more_expert_state(ep_pow, k):
    model = ModelSpec(layers=4, hidden=1024, heads=8, vocab=32000, seq_len=1024,
                      experts=8, top_k=k, gated_mlp=True, norm="rmsnorm")
    training = TrainingSpec(global_batch=16, mixed_precision="megatron")
    ep = 2 ** ep_pow
    a = M.device_memory(model, training, _plan(model, ep=ep, dp=8))[0]
    b = M.device_memory(model, training, _plan(model, ep=min(8, 2 * ep), dp=8))[0]
    assert b.params_bytes <= a.params_bytes
    assert b.grads_bytes <= a.grads_bytes
    assert b.params_bytes + b.grads_bytes + b.optimizer_bytes <= \
        a.params_bytes + a.grads_bytes + a.optimizer_bytes


def test_expert_optimizer_state_shards_over_expert_data_parallel():
    """Megatron-Core's memory formula for the distributed optimizer with EP: the dense
    parameters' optimizer state (12 B/param with Adam: fp32 master, m, v) splits over the
    DP (x CP) group, the expert parameters' over the expert-data-parallel group of dp / ep
    ranks (megatron/core/optimizer/__init__.py builds a separate distributed optimizer for
    the expert parameters on the expert-data-parallel group; Megatron-LM
    docs/source/api-guide/dist_optimizer.md gives the 6 + 12/d B/param per group)."""
    model = ModelSpec(layers=2, hidden=1024, heads=8, vocab=32000, seq_len=1024, experts=8,
                      top_k=2, gated_mlp=True, norm="rmsnorm")
    training = TrainingSpec(global_batch=8, mixed_precision="megatron")
    plan = _plan(model, ep=4, dp=8)
    mem = M.device_memory(model, training, plan)[0]
    experts = M.stage_expert_params(model, plan, 0)
    dense = M.stage_params(model, plan, 0) - experts
    assert experts == model.layers * moe.expert_params(model) // 4   # 2 of 8 experts
    expect = 12 * dense / 8 + 12 * experts / 2            # Adam: fp32 master + m + v
    assert mem.optimizer_bytes == pytest.approx(expect)


def test_bad_moe_inputs_are_refused():
    with pytest.raises(ConfigError, match="plan.ep"):
        simulate("llama3-8b", "dgx-h100", **{"cluster.nodes": 1, "plan.ep": 2})
    with pytest.raises(ConfigError, match="plan.ep"):
        simulate("mixtral-8x7b", "dgx-h100", **{"plan.ep": 3})
    with pytest.raises(ConfigError, match="model.top_k"):
        simulate("mixtral-8x7b", "dgx-h100", **{"model.top_k": 9})
    with pytest.raises(ConfigError, match="model.capacity_factor"):
        simulate("llama3-8b", "dgx-h100", **{"cluster.nodes": 1,
                                             "model.capacity_factor": 1.25})
    with pytest.raises(ConfigError, match="plan.sequence_parallel"):
        simulate("mixtral-8x7b", "dgx-h100", **{"plan.tp": 2, "plan.ep": 4})


def test_capacity_bounds_the_imbalance():
    model = ModelSpec(layers=2, hidden=256, heads=4, vocab=100, seq_len=64, experts=4,
                      moe_imbalance=1.5, capacity_factor=1.25)
    assert moe.load_factor(model) == 1.25
    assert moe.routed_tokens(model, 1000) == 2500           # top-2 x 1.25
    balanced = model.model_copy(update={"moe_imbalance": 1.0})
    assert moe.routed_tokens(balanced, 1000) == 2000


# -- expert parallelism on the network -------------------------------------------------

_SMALL_MOE = {"model.layers": 4, "cluster.nodes": 2, "plan.pp": 1, "plan.dp": 16,
              "training.global_batch": 64}


@pytest.mark.parametrize("ep", [2, 8])
def test_expert_parallel_all_to_all_is_on_the_step(ep):
    """EP moves tokens: the exchange's time shows in the model-parallel communication, and
    an EP group of 8 consecutive DP ranks stays inside one DGX node."""
    one = simulate("mixtral-8x7b", "dgx-h100", **_SMALL_MOE, **{"plan.ep": 1})
    many = simulate("mixtral-8x7b", "dgx-h100", **_SMALL_MOE, **{"plan.ep": ep})
    assert one.breakdown_s["tp_comm"] == 0.0                 # tp 1, ep 1: nothing to move
    assert many.breakdown_s["tp_comm"] > 0.0
    # Experts split over ep ranks: fewer expert parameters per device.
    assert many.memory["devices"][0]["params_bytes"] < one.memory["devices"][0]["params_bytes"]


@settings(max_examples=6, deadline=None)
@given(ep=st.sampled_from([2, 4, 8]), factor=st.sampled_from([2.0, 4.0]))
def test_more_all_to_all_bandwidth_never_slows_a_step(ep, factor):
    """Issue 16's property: doubling (or more) the bandwidth the all-to-all crosses (the
    NVLink of a node, where these EP groups live) never slows a step."""
    base = simulate("mixtral-8x7b", "dgx-h100", **_SMALL_MOE, **{"plan.ep": ep})
    fast = simulate("mixtral-8x7b", "dgx-h100", **_SMALL_MOE, **{
        "plan.ep": ep, "cluster.intra.link": {"base": "NVLink4",
                                              "bandwidth": 450e9 * factor}})
    assert fast.step_time_s <= base.step_time_s * (1 + 1e-12)
    assert fast.breakdown_s["tp_comm"] < base.breakdown_s["tp_comm"]


# -- multi-head latent attention and DeepSeek-V3 ------------------------------------------


def test_deepseek_v3_parameters_match_the_report():
    """DeepSeek-V3 Technical Report: 671B parameters, 37B activated per token (the
    multi-token-prediction module's 14B excluded, as simwall does not model it)."""
    model = load_workload("deepseek-v3").model
    total = M.total_params(model)
    n_moe = moe.moe_layer_count(model, 0, model.layers)
    idle = n_moe * (model.experts - model.top_k) * moe.mlp_params(model, model.moe_ffn, 1)
    assert n_moe == 58                                     # 61 layers, the first 3 dense
    assert total == pytest.approx(671e9, rel=0.005)
    assert total - idle == pytest.approx(37e9, rel=0.02)


def test_latent_attention_projections_and_core():
    """MLA: the down-projections replicated over TP, the up-projections split by heads;
    the fused core runs QK^T at 192 and PV at 128 dims per head (DeepSeek-V3)."""
    model = load_workload("deepseek-v3").model
    m = model.mla
    one = W.layer_ops(model, TrainingSpec(global_batch=1), _plan(model), "fwd")
    two = W.layer_ops(model, TrainingSpec(global_batch=2), _plan(model, tp=2), "fwd")
    by1, by2 = {op.name: op for op in one}, {op.name: op for op in two}
    assert {"q_down", "q_norm", "q_up", "kv_down", "kv_norm", "kv_up"} <= set(by1)
    assert "qkv_proj" not in by1
    assert by2["kv_down"].flop == by1["kv_down"].flop           # replicated
    assert by2["kv_up"].flop == pytest.approx(by1["kv_up"].flop / 2)
    s, heads = model.seq_len, model.heads
    core = 2 * s * s * heads * (m.qk_head_dim + m.v_head_dim) / 2    # causal half
    assert by1[W.FLASH_ATTENTION].flop == pytest.approx(core)
    assert by1["out_proj"].gemm == (s, model.hidden, heads * m.v_head_dim)


def test_latent_attention_needs_the_fused_kernel():
    with pytest.raises(ConfigError, match="model.attention"):
        simulate("deepseek-v3", "dgx-h800", **{"model.attention": "eager"})


def test_deepseek_v3_runs_on_its_cluster():
    r = simulate("deepseek-v3")
    assert r.cluster == "dgx-h800" and r.world == 2048 and r.memory["fits"]
    assert r.plan["ep"] == 64
