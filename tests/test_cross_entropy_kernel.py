"""Which kernel computes the LM head's cross-entropy (``model.cross_entropy``): the
framework's default (fp32 logits kept for the backward) or a fused one that keeps the
16-bit logits and a per-token log-sum-exp and writes a 16-bit gradient (flash-attn's Triton
cross-entropy, or the loss under torch.compile). Bytes counted by hand, and properties: the
fused kernel never needs more memory and never makes a step slower."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from test_invariants import configs  # tests/ is on sys.path (pytest rootdir)

from simwall.api import simulate
from simwall.config import ModelSpec, TrainingSpec
from simwall.model import memory
from simwall.model import ops as W
from simwall.plan import Plan

BF16 = TrainingSpec(global_batch=8, micro_batch=2, precision="bf16", optimizer="adam")
MODEL = ModelSpec(layers=2, hidden=1024, heads=8, vocab=50000, seq_len=2048)
FUSED = MODEL.model_copy(update={"cross_entropy": "fused"})


def _plan(tp: int = 1, framework: str = "fsdp") -> Plan:
    return Plan(tp=tp, pp=1, dp=1, virtual_stages=1, sequence_parallel=False, zero=0,
                recompute="none", schedule="1f1b", micro_batch=2, global_batch=8,
                stage_layers=(2,), framework=framework)


@pytest.mark.parametrize("tp", [1, 2])
def test_fused_keeps_16_bit_logits_and_a_log_sum_exp(tp):
    plan = _plan(tp)
    sb, h, v = 2 * 2048, 1024, 50000
    default = memory.output_activation_bytes(MODEL, BF16, plan)
    fused = memory.output_activation_bytes(FUSED, BF16, plan)
    assert default == 2 * 2 * sb * h + 4 * sb * v / tp
    assert fused == 2 * 2 * sb * h + 2 * sb * v / tp + 4 * sb


@pytest.mark.parametrize("framework", ["megatron", "fsdp", "deepspeed"])
def test_fused_gradient_is_in_the_logits_dtype(framework):
    plan = _plan(2, framework)
    logits = 2 * 2048 * 50000 / 2
    expected = {"megatron": 2, "fsdp": 4, "deepspeed": 4}[framework]
    assert memory.logits_buffer_bytes(MODEL, BF16, plan) == expected * logits
    assert memory.logits_buffer_bytes(FUSED, BF16, plan) == 2 * logits


def test_fused_kernel_reads_the_logits_once_each_way():
    plan = _plan()
    fwd = [op for op in W.head_ops(FUSED, BF16, plan, "fwd") if op.name == W.XENT_FUSED]
    bwd = [op for op in W.head_ops(FUSED, BF16, plan, "bwd")
           if op.name == W.XENT_FUSED + ".grad"]
    assert len(fwd) == len(bwd) == 1
    tokens, logits = 2 * 2048, 2 * 2048 * 50000
    assert fwd[0].bytes_read == 2 * logits
    assert fwd[0].bytes_written == 3 * 4 * tokens
    assert fwd[0].saved_bytes == 2 * logits + 4 * tokens
    assert bwd[0].bytes_read == 2 * logits + 4 * tokens
    assert bwd[0].bytes_written == 2 * logits
    # The default kernel moves more bytes both ways (fp32 passes).
    default_fwd = next(op for op in W.head_ops(MODEL, BF16, plan, "fwd")
                       if op.name == "cross_entropy")
    assert default_fwd.bytes_read + default_fwd.bytes_written > \
        fwd[0].bytes_read + fwd[0].bytes_written


def test_unknown_cross_entropy_kernel_is_refused():
    with pytest.raises(ValueError, match="cross_entropy"):
        ModelSpec(layers=2, hidden=256, heads=4, vocab=100, seq_len=128,
                  cross_entropy="liger")


@settings(deadline=None, derandomize=True, max_examples=60,
          suppress_health_check=[HealthCheck.too_slow])
@given(cfg=configs())
def test_a_fused_cross_entropy_never_needs_more_memory_or_time(cfg):
    """Under every framework the plan resolves to (``plan.framework: auto``)."""
    workload, cluster, over = cfg
    fused = workload.model_copy(update={"model": workload.model.model_copy(
        update={"cross_entropy": "fused"})})
    a, b = simulate(workload, cluster, **over), simulate(fused, cluster, **over)
    assert b.step_time_s <= a.step_time_s * (1 + 1e-12)
    for da, db in zip(a.memory["devices"], b.memory["devices"]):
        assert db["peak_bytes"] <= da["peak_bytes"] * (1 + 1e-12)
        assert math.isclose(db["peak_bytes"], db["closed_form_peak_bytes"], rel_tol=1e-9)


# A Llama-2-7B-shaped model with 26 layers, sequences of 8192 and a 100k vocabulary under
# FSDP on one H100 node: 2.0 GB over with fp32 logits kept, in with a fused loss.
_OVER_BY_LOGITS = {"model.layers": 26, "model.vocab": 100352, "model.seq_len": 8192,
                   "model.tied_embeddings": False, "model.norm": "rmsnorm",
                   "model.dropout": False, "training.global_batch": 16,
                   "training.micro_batch": 2, "training.mixed_precision": "fsdp",
                   "training.optimizer": "adamw", "plan.framework": "fsdp", "plan.tp": 1,
                   "plan.pp": 1, "plan.zero": 3, "plan.recompute": "none", "plan.dp": 8,
                   "cluster.nodes": 1}


def test_check_offers_the_fused_loss_and_it_fits():
    from simwall.studies.check import FUSED_LOSS_FIX, check
    res = check("llama2-7b", "dgx-h100", _OVER_BY_LOGITS)
    assert res.status == "does-not-fit"
    fix = [ln.strip() for ln in res.lines if FUSED_LOSS_FIX in ln]
    assert len(fix) == 1 and fix[0].endswith("(then fits)"), res.lines
    fused = check("llama2-7b", "dgx-h100", {**_OVER_BY_LOGITS, "model.cross_entropy": "fused"})
    assert fused.status == "fits", fused.lines
    # Already fused: not offered again.
    deeper = check("llama2-7b", "dgx-h100", {**_OVER_BY_LOGITS, "model.layers": 30,
                                              "model.cross_entropy": "fused"})
    assert deeper.status == "does-not-fit"
    assert not any(FUSED_LOSS_FIX in ln for ln in deeper.lines)
