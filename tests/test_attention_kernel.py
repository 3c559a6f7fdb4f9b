"""Which fused attention kernel a run uses (``model.flash_kernel``): the framework's default
on the device (cuDNN under Transformer Engine on Hopper) or FlashAttention-2 forced, each
at its own fraction of peak (``EfficiencySpec.flash_attention`` / ``flash_attention_fa2``).
Unit checks and properties (hypothesis): a slower kernel never makes a layer or a step
faster, and a device without an FA2 figure costs both kernels alike."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simwall.api import prepare, run_prepared
from simwall.config import ModelSpec, TrainingSpec
from simwall.hardware.catalog import get_device
from simwall.hardware.efficiency import efficiency_of
from simwall.model import ops as W
from simwall.model.optime import op_time_s, ops_time_s
from simwall.plan import Plan

PROPS = settings(deadline=None, derandomize=True, max_examples=60,
                 suppress_health_check=[HealthCheck.too_slow])
BF16 = TrainingSpec(global_batch=8, micro_batch=1, precision="bf16", optimizer="adam")
MODEL = ModelSpec(layers=2, hidden=2048, heads=16, vocab=32000, seq_len=4096)
PLAN = Plan(tp=1, pp=1, dp=1, virtual_stages=1, sequence_parallel=False, zero=0,
            recompute="none", schedule="1f1b", micro_batch=1, global_batch=8,
            stage_layers=(2,))


def _fused(model: ModelSpec, pass_: str) -> W.Op:
    ops = [op for op in W.layer_ops(model, BF16, PLAN, pass_) if op.kind == "fused_attention"]
    assert len(ops) == 1
    return ops[0]


def _with_eff(device, **fields):
    eff = efficiency_of(device).model_copy(update=fields)
    return device.model_copy(update={"efficiency": eff})


def test_default_kernel_and_fa2_marks_forward_and_backward():
    assert MODEL.flash_kernel == "default"
    fa2 = MODEL.model_copy(update={"flash_kernel": "fa2"})
    for pass_ in ("fwd", "bwd"):
        assert _fused(MODEL, pass_).kernel == ""
        assert _fused(fa2, pass_).kernel == "fa2"
        # Same kernel work either way: only its speed differs.
        assert _fused(fa2, pass_).flop == _fused(MODEL, pass_).flop
        assert _fused(fa2, pass_).bytes_ == _fused(MODEL, pass_).bytes_


def test_h100_fa2_runs_at_its_own_fraction_of_peak():
    dev = get_device("H100-SXM5-80GB")
    eff = efficiency_of(dev)
    assert eff.flash_attention_fa2 < eff.flash_attention   # catalog: 0.30 < 0.48
    fa2 = MODEL.model_copy(update={"flash_kernel": "fa2"})
    for pass_ in ("fwd", "bwd"):
        t_def = op_time_s(_fused(MODEL, pass_), dev, "bf16") - eff.launch_s
        t_fa2 = op_time_s(_fused(fa2, pass_), dev, "bf16") - eff.launch_s
        # Compute bound at s = 4096: time scales with 1 / efficiency.
        assert t_fa2 / t_def == pytest.approx(eff.flash_attention / eff.flash_attention_fa2)


def test_device_without_fa2_figure_costs_both_kernels_alike():
    dev = get_device("A100-SXM4-80GB")
    assert efficiency_of(dev).flash_attention_fa2 == 0
    fa2 = MODEL.model_copy(update={"flash_kernel": "fa2"})
    for pass_ in ("fwd", "bwd"):
        assert op_time_s(_fused(fa2, pass_), dev, "bf16") == op_time_s(_fused(MODEL, pass_),
                                                                        dev, "bf16")


def test_unknown_kernel_is_refused():
    with pytest.raises(ValueError, match="flash_kernel"):
        ModelSpec(layers=2, hidden=256, heads=4, vocab=100, seq_len=128, flash_kernel="fa9")


@PROPS
@given(default=st.floats(0.05, 1.0), ratio=st.floats(0.05, 1.0),
       seq=st.sampled_from([512, 2048, 8192]), kind=st.sampled_from(["gpt", "bert"]))
def test_a_slower_attention_kernel_never_makes_a_layer_faster(default, ratio, seq, kind):
    dev = _with_eff(get_device("H100-SXM5-80GB"), flash_attention=default,
                    flash_attention_fa2=default * ratio)
    model = MODEL.model_copy(update={"seq_len": seq, "kind": kind})
    fa2 = model.model_copy(update={"flash_kernel": "fa2"})

    def layer_s(m):
        return ops_time_s(W.layer_ops(m, BF16, PLAN, "fwd") + W.layer_ops(m, BF16, PLAN, "bwd"),
                          dev, "bf16")

    assert layer_s(fa2) >= layer_s(model)


@settings(deadline=None, derandomize=True, max_examples=8,
          suppress_health_check=[HealthCheck.too_slow])
@given(eff=st.floats(0.1, 0.9), cut=st.floats(0.1, 1.0))
def test_a_less_efficient_attention_kernel_never_shortens_a_step(eff, cut):
    prep = prepare("llama3-8b", "dgx-h100", {"cluster.nodes": 1, "plan.tp": 2,
                                               "plan.dp": 4, "training.global_batch": 16})
    fast = dataclasses.replace(prep, device=_with_eff(prep.device, flash_attention=eff))
    slow = dataclasses.replace(prep, device=_with_eff(prep.device,
                                                     flash_attention=eff * cut))
    assert run_prepared(slow).step_time_s >= run_prepared(fast).step_time_s
