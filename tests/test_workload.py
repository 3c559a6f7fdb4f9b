"""Tests of simwall.model.ops: FLOP counts against Megatron-LM, activations against
Korthikanti et al. 2022, and the physics of recompute as properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simwall.config import ModelSpec, TrainingSpec
from simwall.errors import SimwallError
from simwall.model import ops as W
from simwall.plan import Plan, balanced_split


def make_plan(layers: int, tp: int = 1, pp: int = 1, dp: int = 1, sp: bool = False,
              recompute: str = "none", micro_batch: int = 1, global_batch: int | None = None,
              v: int = 1) -> Plan:
    return Plan(tp=tp, pp=pp, dp=dp, virtual_stages=v, sequence_parallel=sp and tp > 1,
                zero=0, recompute=recompute, schedule="interleaved" if v > 1 else "1f1b",
                micro_batch=micro_batch, global_batch=global_batch or micro_batch * dp,
                stage_layers=balanced_split(layers, pp * v))


# Narayanan et al. 2021, "Efficient Large-Scale Language Model Training on GPU Clusters
# Using Megatron-LM", SC21, Table 1 (copied from /work/shared/calibration/
# megatron-2021-table1.yaml): (heads, hidden, layers, tp, pp, gpus, global_batch);
# all rows use vocab 51200 and seq_len 2048. Only the configuration is used.
MEGATRON_TABLE1 = [
    (24, 2304, 24, 1, 1, 32, 512),
    (32, 3072, 30, 2, 1, 64, 512),
    (32, 4096, 36, 4, 1, 128, 512),
    (48, 6144, 40, 8, 1, 256, 1024),
    (64, 8192, 48, 8, 2, 512, 1536),
    (80, 10240, 60, 8, 4, 1024, 1792),
    (96, 12288, 80, 8, 8, 1536, 2304),
    (128, 16384, 96, 8, 16, 1920, 2160),
    (128, 20480, 105, 8, 35, 2520, 2520),
    (160, 25600, 128, 8, 64, 3072, 3072),
]
VOCAB, SEQ = 51200, 2048


def _megatron(row, recompute):
    heads, h, layers, tp, pp, gpus, batch = row
    model = ModelSpec(attention="eager", layers=layers, hidden=h, heads=heads, vocab=VOCAB, seq_len=SEQ)
    training = TrainingSpec(global_batch=batch)
    dp = gpus // (tp * pp)
    plan = make_plan(layers, tp=tp, pp=pp, dp=dp, recompute=recompute, global_batch=batch)
    return model, training, plan


def _gemm_flop_per_step(model, training, plan):
    """GEMM FLOP of a step from the per-device ops: stages x micro-batches x dp x tp."""
    total = 0.0
    for stage in range(plan.pp):
        so = W.stage_ops(model, training, plan, stage)
        total += sum(op.flop for op in so.fwd + so.bwd if op.gemm is not None)
    return total * plan.micro_batches * plan.dp * plan.tp


@pytest.mark.parametrize("row", MEGATRON_TABLE1, ids=lambda r: f"h{r[1]}")
def test_megatron_flop_full_recompute(row):
    model, training, plan = _megatron(row, "full")
    B, s, l, h, V = training.global_batch, SEQ, model.layers, model.hidden, VOCAB
    # Narayanan et al. 2021, Sec. 5.1: 96 B s l h^2 (1 + s/(6h) + V/(16 l h)).
    paper = 96 * B * s * l * h ** 2 * (1 + s / (6 * h) + V / (16 * l * h))
    assert W.hardware_flop_per_step(model, training, plan) == pytest.approx(paper, rel=0.01)
    # The GEMMs alone reproduce the paper's count exactly (it counts GEMMs only).
    assert _gemm_flop_per_step(model, training, plan) == pytest.approx(paper, rel=1e-9)


@pytest.mark.parametrize("row", MEGATRON_TABLE1, ids=lambda r: f"h{r[1]}")
def test_megatron_flop_no_recompute(row):
    model, training, plan = _megatron(row, "none")
    B, s, l, h, V = training.global_batch, SEQ, model.layers, model.hidden, VOCAB
    # Without recompute the layers do 3 passes (72 = 3/4 x 96) but the LM head keeps its
    # 6 B s h V, so its term is V/(12 l h), not V/(16 l h) (docs/cost-model.md).
    exact = 72 * B * s * l * h ** 2 * (1 + s / (6 * h) + V / (12 * l * h))
    assert _gemm_flop_per_step(model, training, plan) == pytest.approx(exact, rel=1e-9)
    assert W.hardware_flop_per_step(model, training, plan) == pytest.approx(exact, rel=0.01)
    assert W.model_flop_per_step(model, training) == pytest.approx(exact, rel=0.01)


# GPT-3 175B shape (Brown et al. 2020, Table 2.1), the model of Korthikanti et al. Table 2.
GPT3 = ModelSpec(attention="eager", layers=96, hidden=12288, heads=96, vocab=51200, seq_len=2048)
BF16 = TrainingSpec(global_batch=64, precision="bf16")


@pytest.mark.parametrize("tp", [1, 2, 8])
@pytest.mark.parametrize("micro_batch", [1, 3])
@pytest.mark.parametrize("variant", ["none", "tp", "tp_sp", "selective", "full", "full_sp"])
def test_korthikanti_activation_formulas(tp, micro_batch, variant):
    # Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer
    # Models", Sec. 4 eq. 1-2 and Table 2, bytes per layer per device.
    s, b, h, a, t = GPT3.seq_len, micro_batch, GPT3.hidden, GPT3.heads, tp
    sp = variant in ("tp_sp", "full_sp", "selective")
    rc = {"selective": "selective", "full": "full", "full_sp": "full"}.get(variant, "none")
    plan = make_plan(GPT3.layers, tp=tp, sp=sp, recompute=rc, micro_batch=b)
    sp = plan.sequence_parallel
    if rc == "full":
        want = 2 * s * b * h / (t if sp else 1)
    elif rc == "selective":
        want = s * b * h / t * 34 if sp else s * b * h * (10 + 24 / t)
    elif sp:
        want = s * b * h / t * (34 + 5 * a * s / h)
    else:
        want = s * b * h * (10 + 24 / t + 5 * a * s / (h * t))
    got = W.activation_bytes_per_layer(GPT3, BF16, plan)
    assert got == pytest.approx(want, rel=1e-12)


def test_activation_generalisations():
    plan = make_plan(GPT3.layers)
    base = W.activation_bytes_per_layer(GPT3, BF16, plan)
    fp32 = TrainingSpec(global_batch=64, precision="fp32")
    s, h, a = GPT3.seq_len, GPT3.hidden, GPT3.heads
    masks = 2 * s * h + a * s * s  # two hidden-size masks and the attention mask, 1 byte each
    # fp32 doubles every tensor but the 1-byte masks.
    assert W.activation_bytes_per_layer(GPT3, fp32, plan) == pytest.approx(2 * base - masks)
    # No dropout: no masks and no dropout output (the softmax output is reused).
    nodrop = GPT3.model_copy(update={"dropout": False})
    assert W.activation_bytes_per_layer(nodrop, BF16, plan) == pytest.approx(
        base - masks - 2 * a * s * s)
    # A gated MLP keeps both branches of the activation input: +2 s ffn bytes.
    gated = GPT3.model_copy(update={"gated_mlp": True})
    assert W.activation_bytes_per_layer(gated, BF16, plan) == pytest.approx(
        base + 2 * s * GPT3.ffn)
    # GQA with 8 KV heads keeps smaller K and V.
    gqa = GPT3.model_copy(update={"kv_heads": 8})
    assert W.activation_bytes_per_layer(gqa, BF16, plan) == pytest.approx(
        base - 2 * 2 * s * (h - 8 * GPT3.head_dim))


def test_gqa_kv_replicated_when_tp_exceeds_kv_heads():
    model = ModelSpec(attention="eager", layers=2, hidden=1024, heads=16, kv_heads=2, vocab=1000, seq_len=128)
    ops = {op.name: op for op in W.layer_ops(model, BF16, make_plan(2, tp=8))}
    q, k = 16 // 8 * 64, 1 * 64  # 2 query heads and 1 (replicated) KV head per rank
    assert ops["qkv_proj"].gemm == (128, q + 2 * k, 1024)


def test_backward_gemms_double_forward():
    plan = make_plan(GPT3.layers, tp=4)
    fwd = W.layer_ops(GPT3, BF16, plan, "fwd")
    bwd = W.layer_ops(GPT3, BF16, plan, "bwd")
    gemm = lambda ops: sum(op.flop for op in ops if op.gemm is not None)
    assert gemm(bwd) == pytest.approx(2 * gemm(fwd), rel=1e-12)
    assert all(op.pass_ == "bwd" and op.saved_bytes == 0 for op in bwd)
    # 24 b s h^2 + 4 b s^2 h per layer forward, split over tp (Narayanan et al. 2021).
    s, h = GPT3.seq_len, GPT3.hidden
    assert gemm(fwd) == pytest.approx((24 * s * h * h + 4 * s * s * h) / 4, rel=1e-12)


def test_recompute_ops():
    none = make_plan(GPT3.layers, recompute="none")
    sel = make_plan(GPT3.layers, recompute="selective")
    full = make_plan(GPT3.layers, recompute="full")
    assert W.layer_ops(GPT3, BF16, none, "recompute") == ()
    assert {op.name for op in W.layer_ops(GPT3, BF16, sel, "recompute")} == W.ATTENTION_CORE
    rec_full = W.layer_ops(GPT3, BF16, full, "recompute")
    assert [op.name for op in rec_full] == [op.name for op in W.layer_ops(GPT3, BF16, full)]
    assert all(op.pass_ == "recompute" for op in rec_full)


@settings(deadline=None, derandomize=True, max_examples=40)
@given(heads=st.sampled_from([4, 8, 16]), head_dim=st.sampled_from([32, 64, 128]),
       seq=st.sampled_from([128, 512, 2048]), tp=st.sampled_from([1, 2, 4]),
       sp=st.booleans(), gated=st.booleans(), dropout=st.booleans(),
       b=st.integers(1, 4))
def test_recompute_monotone(heads, head_dim, seq, tp, sp, gated, dropout, b):
    model = ModelSpec(attention="eager", layers=4, hidden=heads * head_dim, heads=heads, vocab=5000, seq_len=seq,
                      gated_mlp=gated, dropout=dropout)
    plans = [make_plan(4, tp=tp, sp=sp, recompute=r, micro_batch=b, global_batch=4 * b)
             for r in ("none", "selective", "full")]
    flop = [W.hardware_flop_per_step(model, BF16, p) for p in plans]
    act = [W.activation_bytes_per_layer(model, BF16, p) for p in plans]
    assert flop[0] <= flop[1] <= flop[2]
    assert flop[0] < flop[2]
    assert act[0] >= act[1] >= act[2] > 0
    # Model FLOP ignore recompute; hardware FLOP without recompute match them up to the
    # elementwise work that TP replicates outside the SP regions.
    mf = W.model_flop_per_step(model, TrainingSpec(global_batch=4 * b))
    assert mf <= flop[0] * (1 + 1e-12)
    if tp == 1:
        assert flop[0] == pytest.approx(mf, rel=1e-9)


def test_stage_ops_placement_and_interleaving():
    model = ModelSpec(attention="eager", layers=8, hidden=256, heads=4, vocab=1000, seq_len=64)
    plan = make_plan(8, pp=2, v=2, dp=1, global_batch=4)
    first, last = W.stage_ops(model, BF16, plan, 0), W.stage_ops(model, BF16, plan, 1)
    assert first.fwd[0].name == "embedding" and first.bwd[-1].name == "embedding.grad"
    assert last.fwd[-1].name == "cross_entropy" and last.bwd[0].name == "cross_entropy.grad"
    assert not any(op.name == "embedding" for op in last.fwd)
    assert not any(op.name == "lm_head" for op in first.fwd)
    n_layer = len(W.layer_ops(model, BF16, plan))
    assert sum(op.name == "input_norm" for op in first.fwd) == plan.layers_on_stage(0)
    assert len(first.fwd) == n_layer * 4 + len(W.embedding_ops(model, BF16, plan))
    # Deterministic and cached.
    assert W.stage_ops(model, BF16, plan, 0) is first


def test_decode_and_prefill_shapes():
    model = ModelSpec(attention="eager", layers=2, hidden=1600, heads=25, vocab=50257, seq_len=1024)
    fp32 = TrainingSpec(global_batch=1, precision="fp32")
    plan = make_plan(2, micro_batch=3)
    dec = {op.name: op for op in W.layer_ops(model, fp32, plan, "fwd", "decode")}
    pre = {op.name: op for op in W.layer_ops(model, fp32, plan, "fwd", "prefill")}
    assert dec["qkv_proj"].gemm == (3, 3 * 1600, 1600)
    assert dec["attn_scores"].gemm == (1, 1024, 64) and dec["attn_scores"].count == 3 * 25
    kv_cache = 3 * 1024 * 1600 * 4  # K of every cached token, fp32
    assert dec["attn_scores"].bytes_read >= kv_cache
    assert "attn_dropout" not in pre and all(op.saved_bytes == 0 for op in pre.values())
    assert pre["qkv_proj"].gemm == (3 * 1024, 3 * 1600, 1600)
    head = W.head_ops(model, fp32, plan, "fwd", "decode")
    assert [op.name for op in head] == ["final_norm", "lm_head"]
    assert head[1].gemm == (3, 50257, 1600)
    assert max(op.intensity for op in dec.values()) < 10


def test_op_properties():
    op = W.Op(name="x", kind="matmul", flop=100.0, bytes_read=30.0, bytes_written=20.0)
    assert op.bytes_ == 50.0 and op.intensity == 2.0
    assert W.Op(name="y", kind="elementwise", flop=1.0, bytes_read=0.0,
                bytes_written=0.0).intensity == 0.0


def test_bad_arguments_raise():
    plan = make_plan(GPT3.layers)
    with pytest.raises(SimwallError, match="pass_"):
        W.layer_ops(GPT3, BF16, plan, "sideways")
    with pytest.raises(SimwallError, match="mode"):
        W.layer_ops(GPT3, BF16, plan, "fwd", "serve")
    with pytest.raises(SimwallError, match="forward"):
        W.layer_ops(GPT3, BF16, plan, "bwd", "decode")
    with pytest.raises(SimwallError, match="stage"):
        W.stage_ops(GPT3, BF16, plan, 1)
    assert math.isfinite(W.hardware_flop_per_step(GPT3, BF16, plan))


@settings(max_examples=30, deadline=None)
@given(vocab=st.sampled_from([1000, 32000, 51200, 131072]), seq=st.sampled_from([64, 2048]),
       tp=st.sampled_from([1, 2, 8]), b=st.integers(1, 4))
def test_cross_entropy_fp32_passes(vocab, seq, tp, b):
    """The loss runs as Megatron-LM's unfused vocabulary-parallel cross-entropy
    (megatron/core/tensor_parallel/cross_entropy.py): forward reads the 16-bit logits once
    and makes five fp32 reads and four fp32 writes per logit (cast, max, subtract, exp,
    sum, divide); backward two fp32 reads, one fp32 and one 16-bit write (scale by the
    loss gradient, cast back). It keeps the fp32 softmax; bytes scale with the logits
    of one device (vocab / tp)."""
    model = ModelSpec(attention="flash", layers=2, hidden=256, heads=4, vocab=vocab,
                      seq_len=seq)
    plan = make_plan(2, tp=tp, micro_batch=b, global_batch=b)
    fwd = {op.name: op for op in W.head_ops(model, BF16, plan, "fwd")}
    bwd = {op.name: op for op in W.head_ops(model, BF16, plan, "bwd")}
    logits = b * seq * (vocab // tp)
    xe, xg = fwd["cross_entropy"], bwd["cross_entropy.grad"]
    assert xe.bytes_read == pytest.approx(logits * (2 + 5 * 4))
    assert xe.bytes_written == pytest.approx(logits * 4 * 4)
    assert xe.saved_bytes == pytest.approx(logits * 4)
    assert xg.bytes_read == pytest.approx(logits * 2 * 4)
    assert xg.bytes_written == pytest.approx(logits * (4 + 2))
    assert xg.saved_bytes == 0 and xg.pass_ == "bwd"
    # The loss moves more bytes than the logits GEMM writes (memory-bound at any vocab).
    assert xe.bytes_ > fwd["lm_head"].bytes_written
