"""Fused (flash) vs eager attention, the memory reserve and the ZeRO-3 gathered buffer:
unit checks, properties (hypothesis) and Llama 3 8B with FSDP on one DGX H100 against an
independent estimate."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simwall.api import simulate
from simwall.config import ModelSpec, TrainingSpec
from simwall.hardware.catalog import get_device
from simwall.model import memory as M
from simwall.model import ops as W
from simwall.model.optime import ops_time_s
from simwall.plan import Plan, balanced_split

PROPS = settings(deadline=None, derandomize=True, max_examples=150,
                 suppress_health_check=[HealthCheck.too_slow])
BF16 = TrainingSpec(global_batch=64, micro_batch=1, precision="bf16", optimizer="adam")


def make_plan(layers: int, tp: int = 1, pp: int = 1, dp: int = 1, *, sp: bool = False,
              zero: int = 0, recompute: str = "none", micro_batch: int = 1) -> Plan:
    return Plan(tp=tp, pp=pp, dp=dp, virtual_stages=1, sequence_parallel=sp and tp > 1,
                zero=zero, recompute=recompute, schedule="1f1b", micro_batch=micro_batch,
                global_batch=dp * micro_batch * 4 * pp,
                stage_layers=balanced_split(layers, pp))


def _pair(model: ModelSpec) -> tuple[ModelSpec, ModelSpec]:
    return (model.model_copy(update={"attention": "flash"}),
            model.model_copy(update={"attention": "eager"}))


# ---------------------------------------------------------------------------------------
# Unit checks


def test_flash_is_the_default_and_keeps_no_s2_tensor():
    model = ModelSpec(layers=2, hidden=1024, heads=16, vocab=1000, seq_len=2048)
    assert model.attention == "flash"
    plan = make_plan(2)
    fwd = W.layer_ops(model, BF16, plan, "fwd")
    names = [op.name for op in fwd]
    assert W.FLASH_ATTENTION in names and not W.ATTENTION_CORE & set(names)
    flash = fwd[names.index(W.FLASH_ATTENTION)]
    b, s, a, d = 1, 2048, 16, 64
    # Dao et al. 2022, Algorithm 2: keeps the fp32 logsumexp, one per query row and head.
    assert flash.saved_bytes == b * a * s * 4
    # Causal (kind gpt): half of 4 b s^2 h; backward 2.5x.
    assert flash.flop == 4 * b * s * s * a * d / 2
    bwd = [op for op in W.layer_ops(model, BF16, plan, "bwd") if op.kind == "fused_attention"]
    assert len(bwd) == 1 and bwd[0].flop == 2.5 * flash.flop
    bert = model.model_copy(update={"kind": "bert"})
    assert W.layer_ops(bert, BF16, plan, "fwd")[names.index(W.FLASH_ATTENTION)].flop == (
        4 * b * s * s * a * d)


def test_flash_selective_recompute_reruns_the_kernel_and_model_flop_convention():
    model = ModelSpec(layers=4, hidden=2048, heads=16, vocab=32000, seq_len=4096)
    none, sel = make_plan(4, tp=2, recompute="none"), make_plan(4, tp=2, recompute="selective")
    # Megatron-LM checkpoints the fused core attention (checkpoint_core_attention): the
    # layer drops the kernel's fp32 logsumexp, b (a/t) s x 4 bytes, and nothing else.
    lse = 1 * (16 // 2) * 4096 * 4
    assert M.korthikanti_activation_bytes(model, BF16, none) - (
        M.korthikanti_activation_bytes(model, BF16, sel)) == lse
    assert W.activation_bytes_per_layer(model, BF16, none) - (
        W.activation_bytes_per_layer(model, BF16, sel)) == lse
    # The backward re-runs the forward kernel once, the same op as the forward's.
    rec = W.layer_ops(model, BF16, sel, "recompute")
    fwd = [op for op in W.layer_ops(model, BF16, none, "fwd") if op.name == W.FLASH_ATTENTION]
    assert [op.name for op in rec] == [W.FLASH_ATTENTION]
    assert (rec[0].flop, rec[0].bytes_, rec[0].kind) == (fwd[0].flop, fwd[0].bytes_,
                                                         fwd[0].kind)
    assert W.layer_ops(model, BF16, none, "recompute") == ()
    dev = get_device("H100-SXM5-80GB")
    assert ops_time_s(rec, dev, "bf16") == pytest.approx(ops_time_s(fwd, dev, "bf16"))
    # The model FLOP (MFU numerator) count the eager full-s^2 attention whatever the kernel.
    flash, eager = _pair(model)
    assert W.model_flop_per_step(flash, BF16) == W.model_flop_per_step(eager, BF16)
    # Hardware FLOP: the causal kernel executes less attention work than the eager one.
    assert W.hardware_flop_per_step(flash, BF16, none) < W.hardware_flop_per_step(eager, BF16,
                                                                                   none)


def test_full_recompute_buffer_has_no_s2_term_with_flash():
    model = ModelSpec(layers=4, hidden=2048, heads=16, vocab=32000, seq_len=8192,
                      dropout=True)
    flash, eager = _pair(model)
    plan = make_plan(4, recompute="full")
    sbh = 8192 * 2048
    diff = (M.device_memory(eager, BF16, plan)[0].other_bytes
            - M.device_memory(flash, BF16, plan)[0].other_bytes)
    # Korthikanti et al. 2022, Sec. 4.1: the eager core keeps 5as per token (16-bit);
    # the fused kernel keeps 4a per token (fp32 logsumexp).
    assert diff == pytest.approx(sbh * (5 * 16 * 8192 / 2048 - 4 * 16 / 2048))


def test_reserve_from_cluster_keys():
    plan = make_plan(2)
    model = ModelSpec(layers=2, hidden=1024, heads=16, vocab=1000, seq_len=512)
    a = M.device_memory(model, BF16, plan)[0]
    b = M.device_memory(model, BF16, plan, 0.0, 0.0)[0]
    assert a.reserved_bytes > M.RESERVED_BYTES and b.reserved_bytes == 0.0
    assert a.peak_bytes - b.peak_bytes == pytest.approx(a.reserved_bytes)
    r = simulate("llama2-7b", "single-node", **{"cluster.memory_reserved": 5e9,
                                                "cluster.memory_fragmentation": 0.0})
    for d in r.memory["devices"]:
        assert d["reserved_bytes"] == 5e9


def test_zero3_gathered_buffer_is_capped():
    # A 530B-class layer (h 20480): two layers exceed DeepSpeed's 1e9 live parameters.
    big = ModelSpec(layers=8, hidden=20480, heads=128, vocab=51200, seq_len=2048)
    plan = make_plan(8, tp=8, pp=8, dp=8, zero=3)
    assert 2 * M.layer_params(big, 8) > M.ZERO3_MAX_LIVE_PARAMS
    # One layer per stage: never more than the stage holds.
    assert M.zero3_gathered_params(big, plan, 3) == M.layer_params(big, 8)
    plan2 = make_plan(8, tp=8, pp=2, dp=8, zero=3)
    assert M.zero3_gathered_params(big, plan2, 1) == M.ZERO3_MAX_LIVE_PARAMS
    # Without TP one weight matrix (4h x h) exceeds the cap: it is gathered whole.
    plan3 = make_plan(8, pp=8, dp=8, zero=3)
    assert M.zero3_gathered_params(big, plan3, 3) == 4 * 20480 * 20480


# ---------------------------------------------------------------------------------------
# Properties


@st.composite
def cases(draw):
    kind = draw(st.sampled_from(["gpt", "bert"]))
    d = draw(st.sampled_from([64, 128, 256]))     # FlashAttention-2 head dims (<= 256)
    tp = draw(st.sampled_from([1, 2, 4, 8]))
    heads = tp * draw(st.sampled_from([1, 2, 4]))
    kv = draw(st.sampled_from([k for k in (1, 2, 4, 8, heads) if heads % k == 0]))
    pp = draw(st.sampled_from([1, 2, 4]))
    layers = pp * draw(st.integers(1, 3))
    model = ModelSpec(kind=kind, layers=layers, hidden=heads * d, heads=heads, kv_heads=kv,
                      ffn_hidden=4 * heads * d, vocab=draw(st.sampled_from([1000, 32000])),
                      seq_len=draw(st.sampled_from([256, 1024, 2048, 8192])),
                      gated_mlp=draw(st.booleans()), dropout=draw(st.booleans()),
                      norm=draw(st.sampled_from(["layernorm", "rmsnorm"])))
    plan = make_plan(layers, tp=tp, pp=pp, dp=draw(st.sampled_from([1, 2, 8, 64])),
                     sp=draw(st.booleans()), zero=draw(st.integers(0, 3)),
                     recompute=draw(st.sampled_from(["none", "selective", "full"])),
                     micro_batch=draw(st.sampled_from([1, 2, 4])))
    training = BF16.model_copy(update={"precision": draw(st.sampled_from(["bf16", "fp32"]))})
    return model, training, plan


@PROPS
@given(case=cases(), device=st.sampled_from(["A100-SXM4-80GB", "H100-SXM5-80GB"]))
def test_flash_never_uses_more_memory_or_time_than_eager(case, device):
    model, training, plan = case
    flash, eager = _pair(model)
    for f, e in zip(M.device_memory(flash, training, plan),
                    M.device_memory(eager, training, plan)):
        assert f.peak_bytes <= e.peak_bytes
        if plan.recompute == "none":   # selective: eager keeps no core, flash its logsumexp
            assert f.activations_bytes <= e.activations_bytes
    dev = get_device(device)
    precision = training.precision

    def layer_s(m):
        return ops_time_s(W.layer_ops(m, training, plan, "fwd")
                          + W.layer_ops(m, training, plan, "recompute")
                          + W.layer_ops(m, training, plan, "bwd"), dev, precision)

    assert layer_s(flash) <= layer_s(eager)


@PROPS
@given(case=cases())
def test_zero3_never_above_zero2_and_recompute_never_raises_memory(case):
    model, training, plan = case
    if plan.dp > 1:
        z2 = M.device_memory(model, training, Plan(**{**plan.__dict__, "zero": 2}))
        z3 = M.device_memory(model, training, Plan(**{**plan.__dict__, "zero": 3}))
        for a, b in zip(z3, z2):
            assert a.peak_bytes <= b.peak_bytes * (1 + 1e-12)
    peaks = {r: [s.peak_bytes for s in M.device_memory(
        model, training, Plan(**{**plan.__dict__, "recompute": r}))]
        for r in ("none", "selective", "full")}
    for st_ in range(plan.pp):
        assert peaks["full"][st_] <= peaks["selective"][st_] * (1 + 1e-12)
        assert peaks["selective"][st_] <= peaks["none"][st_] * (1 + 1e-12)


# ---------------------------------------------------------------------------------------
# Llama 3 8B, FSDP (ZeRO-3) on one DGX H100, sequence 8192, micro-batch 1, no recompute


def test_llama3_8b_fsdp_on_one_dgx_h100_fits_and_matches_an_independent_estimate():
    over = {"cluster.nodes": 1, "plan.tp": 1, "plan.pp": 1, "plan.zero": 3,
            "plan.recompute": "none", "plan.sequence_parallel": False,
            "training.micro_batch": 1, "training.global_batch": 8}
    r = simulate("llama3-8b", "dgx-h100", **over)
    assert r.inputs["model.attention"] == "flash"
    assert r.memory["fits"]
    dev = r.memory["devices"][0]

    # Independent estimate from the configuration (Dubey et al. 2024, Table 3 shape).
    L, h, f, a, kv, V, s, b, n = 32, 4096, 14336, 32, 8, 128256, 8192, 1, 8
    d = h // a
    # Parameters: QKV h (h + 2 kv d), output h^2, SwiGLU 3 h f, two RMSNorm gains per layer;
    # untied embedding and head V h; final norm h.
    params = L * (h * (h + 2 * kv * d) + h * h + 3 * h * f + 2 * h) + 2 * V * h + h
    assert params == pytest.approx(8.03e9, rel=0.01)
    # Model states, fully sharded (FSDP / ZeRO-3) over n: 16 B/param with mixed-precision
    # Adam (Rajbhandari et al. 2020, Sec. 3.1: 2 + 2 + 12).
    states = 16 * params / n
    # Activations: Korthikanti et al. 2022, Table 2, as Megatron-LM's
    # theoretical_memory_usage.py evaluates it with no s^2 term (selective recompute, which
    # a fused kernel matches): s b h (18 + 4 f / h) per layer, plus the output layer's
    # inputs and fp32 logits 4 s b h (1 + V / h) and the embedding's 8 s b + s b h.
    sbh = s * b * h
    activations = L * sbh * (18 + 4 * f / h) + 4 * sbh * (1 + V / h) + 8 * s * b + sbh
    ours_states = dev["params_bytes"] + dev["grads_bytes"] + dev["optimizer_bytes"]
    assert ours_states == pytest.approx(states, rel=0.10)
    assert dev["activations_bytes"] == pytest.approx(activations, rel=0.10)
    assert ours_states + dev["activations_bytes"] == pytest.approx(states + activations,
                                                                   rel=0.10)
