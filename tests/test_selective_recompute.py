"""Selective recompute with either attention kernel (issue 14 follow-up): Megatron-LM's
``--recompute-granularity selective`` checkpoints the core attention, so with a fused
(flash) kernel the backward re-runs its forward and the layer drops only the kernel's
logsumexp. Unit checks, and the physics as properties (hypothesis): recompute never
raises memory; selective is never faster than none nor slower than full."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simwall.config import ModelSpec, TrainingSpec, load_cluster
from simwall.costing import stage_cost
from simwall.costing.cp import cp_cost
from simwall.hardware.catalog import get_device
from simwall.model import memory as M
from simwall.model import ops as W
from simwall.model.optime import ops_time_s
from simwall.net import build_topology
from simwall.plan import Plan, balanced_split

PROPS = settings(deadline=None, derandomize=True, max_examples=60,
                 suppress_health_check=[HealthCheck.too_slow,
                                        HealthCheck.function_scoped_fixture])
BF16 = TrainingSpec(global_batch=64, micro_batch=1, precision="bf16", optimizer="adam")
A100 = get_device("A100-SXM4-80GB")
MODES = ("none", "selective", "full")


def make_plan(layers: int, tp: int = 1, pp: int = 1, dp: int = 1, cp: int = 1, *,
              sp: bool = False, zero: int = 0, recompute: str = "none",
              micro_batch: int = 1) -> Plan:
    return Plan(tp=tp, pp=pp, dp=dp, cp=cp, virtual_stages=1, sequence_parallel=sp and tp > 1,
                zero=zero, recompute=recompute, schedule="1f1b", micro_batch=micro_batch,
                global_batch=dp * micro_batch * 4 * pp, stage_layers=balanced_split(layers, pp))


def modes(plan: Plan) -> dict[str, Plan]:
    return {r: replace(plan, recompute=r) for r in MODES}


@pytest.fixture(scope="module")
def node():
    return build_topology(load_cluster("single-node"))


# ---------------------------------------------------------------------------------------
# Unit checks


@pytest.mark.parametrize("sp", [False, True])
@pytest.mark.parametrize("cp", [1, 2])
def test_flash_selective_drops_the_logsumexp_in_both_memory_counts(sp, cp):
    model = ModelSpec(layers=4, hidden=2048, heads=16, kv_heads=4, vocab=32000,
                      seq_len=8192, gated_mlp=True, norm="rmsnorm")
    by = modes(make_plan(4, tp=4, cp=cp, sp=sp, micro_batch=2))
    lse = 2 * (16 // 4) * (8192 // cp) * 4          # b x a/t x s/cp fp32 values
    for count in (M.korthikanti_activation_bytes, W.activation_bytes_per_layer):
        assert count(model, BF16, by["none"]) - count(model, BF16, by["selective"]) == lse
    # The closed form and the op list agree under selective recompute too.
    assert M.korthikanti_activation_bytes(model, BF16, by["selective"]) == (
        W.activation_bytes_per_layer(model, BF16, by["selective"]))
    # The working set of the rematerialised layer: the logsumexp of one layer.
    assert M.device_memory(model, BF16, by["selective"])[0].other_bytes - (
        M.device_memory(model, BF16, by["none"])[0].other_bytes) == lse


def test_eager_selective_is_unchanged():
    """The eager core's four kernels are what selective recomputes, nothing more
    (Korthikanti et al. 2022, Sec. 5); the flash op never appears."""
    model = ModelSpec(layers=2, hidden=1024, heads=16, vocab=1000, seq_len=2048,
                      attention="eager", dropout=True)
    rec = W.layer_ops(model, BF16, make_plan(2, recompute="selective"), "recompute")
    assert [op.name for op in rec] == ["attn_scores", "softmax", "attn_dropout",
                                       "attn_context"]
    # fp32 runs fall back to the eager kernels whatever model.attention says.
    flash32 = model.model_copy(update={"attention": "flash"})
    fp32 = BF16.model_copy(update={"precision": "fp32"})
    assert W.layer_ops(flash32, fp32, make_plan(2, recompute="selective"), "recompute") == (
        W.layer_ops(model, fp32, make_plan(2, recompute="selective"), "recompute"))


def test_flash_selective_recompute_costs_one_kernel_forward_per_layer():
    model = ModelSpec(layers=2, hidden=4096, heads=32, vocab=32000, seq_len=4096)
    by = modes(make_plan(2, tp=2))
    fwd = [op for op in W.layer_ops(model, BF16, by["none"], "fwd")
           if op.name == W.FLASH_ATTENTION]
    rec = W.layer_ops(model, BF16, by["selective"], "recompute")
    assert len(fwd) == 1 and len(rec) == 1
    assert ops_time_s(rec, A100, "bf16") == ops_time_s(fwd, A100, "bf16") > 0
    # Hardware FLOP of a step grow by that kernel per layer per micro-batch; model FLOP not.
    extra = W.hardware_flop_per_step(model, BF16, by["selective"]) - (
        W.hardware_flop_per_step(model, BF16, by["none"]))
    devices, micro_batches = by["none"].world, by["none"].micro_batches
    assert extra == pytest.approx(fwd[0].flop * model.layers * devices * micro_batches)


def test_flash_selective_repeats_the_context_parallel_exchange(node):
    """With CP the recomputed attention forward runs its K/V exchange again, as under full
    recompute (Transformer Engine's context-parallel attention is what is checkpointed)."""
    model = ModelSpec(layers=2, hidden=1024, heads=16, kv_heads=4, vocab=32000,
                      seq_len=32768, gated_mlp=True, norm="rmsnorm")
    by = modes(make_plan(2, tp=2, cp=4, sp=True))
    for comm in ("p2p", "all_gather"):
        cost = {r: cp_cost(model, BF16, replace(p, cp_comm=comm), A100, node, 0, True)
                for r, p in by.items()}
        assert cost["selective"].layer_bwd_s == pytest.approx(cost["full"].layer_bwd_s)
        assert cost["selective"].layer_bwd_s >= cost["none"].layer_bwd_s
        assert cost["selective"].layer_fwd_s == cost["none"].layer_fwd_s


# ---------------------------------------------------------------------------------------
# Properties


@st.composite
def cases(draw):
    d = draw(st.sampled_from([64, 128]))
    tp = draw(st.sampled_from([1, 2, 4]))
    heads = tp * draw(st.sampled_from([1, 2, 4]))
    kv = draw(st.sampled_from([k for k in (1, 2, 4, heads) if heads % k == 0]))
    pp = draw(st.sampled_from([1, 2]))
    cp = draw(st.sampled_from([1, 2])) if tp * pp <= 4 else 1
    dp = draw(st.sampled_from([d_ for d_ in (1, 2) if tp * pp * cp * d_ <= 8]))
    layers = pp * draw(st.integers(1, 3))
    model = ModelSpec(kind=draw(st.sampled_from(["gpt", "bert"])), layers=layers,
                      hidden=heads * d, heads=heads, kv_heads=kv, ffn_hidden=4 * heads * d,
                      vocab=draw(st.sampled_from([1000, 32000])),
                      seq_len=draw(st.sampled_from([512, 2048, 8192])),
                      gated_mlp=draw(st.booleans()), dropout=draw(st.booleans()),
                      attention=draw(st.sampled_from(["flash", "eager"])),
                      norm=draw(st.sampled_from(["layernorm", "rmsnorm"])))
    plan = make_plan(layers, tp=tp, pp=pp, dp=dp, cp=cp, sp=draw(st.booleans()),
                     zero=draw(st.sampled_from([0, 1, 3])) if dp * cp > 1 else 0,
                     micro_batch=draw(st.sampled_from([1, 2])))
    training = BF16.model_copy(update={"precision": draw(st.sampled_from(["bf16", "fp32"]))})
    return model, training, plan


@PROPS
@given(case=cases())
def test_recompute_never_raises_memory(case):
    model, training, plan = case
    peaks = {r: M.device_memory(model, training, p) for r, p in modes(plan).items()}
    for stage in range(plan.pp):
        for lo, hi in (("full", "selective"), ("selective", "none")):
            assert peaks[lo][stage].activations_bytes <= peaks[hi][stage].activations_bytes
            assert peaks[lo][stage].peak_bytes <= peaks[hi][stage].peak_bytes * (1 + 1e-12)


@PROPS
@given(case=cases())
def test_selective_is_between_none_and_full_in_time(case, node):
    """Per stage and micro-batch, forward plus backward (compute, TP and CP communication,
    exposed ZeRO-3): none <= selective <= full. Recompute adds work to the backward only."""
    model, training, plan = case
    times = {}
    for r, p in modes(plan).items():
        for stage in range(plan.pp):
            chunks = stage_cost(model, training, p, A100, node, stage, 1.0, True).chunks
            times[r, stage] = (sum(c.fwd_s for c in chunks), sum(c.bwd_s for c in chunks))
    for stage in range(plan.pp):
        fwd = {r: times[r, stage][0] for r in MODES}
        bwd = {r: times[r, stage][1] for r in MODES}
        assert fwd["none"] == pytest.approx(fwd["selective"])
        assert bwd["none"] <= bwd["selective"] * (1 + 1e-12)
        assert bwd["selective"] <= bwd["full"] * (1 + 1e-12)
