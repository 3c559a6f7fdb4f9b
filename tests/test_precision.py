"""Tests of the precision conventions (training.mixed_precision), FP8 as Transformer Engine
runs it, the refusal of a precision a device has no units for, and per-device SM counts.
Mirrors simwall.config.schema (TrainingSpec), simwall.model.memory.model_state_bytes,
simwall.model.ops (FP8 GEMMs), simwall.hardware.efficiency and simwall.catalog."""

from __future__ import annotations

import pytest

from simwall import simulate
from simwall.config import FP8_WEIGHT_CACHE_BYTES, ModelSpec, TrainingSpec
from simwall.costing.compute import op_times
from simwall.errors import ConfigError
from simwall.hardware.catalog import get_device
from simwall.hardware.efficiency import gemm_efficiency
from simwall.model import ops as ops_mod
from simwall.model.memory import model_state_bytes
from simwall.model.optime import op_time_s
from simwall.plan import Plan


def _bytes_per_param(zero: int = 0, dp: int = 1, **training) -> float:
    t = TrainingSpec(global_batch=8, **training)
    return sum(model_state_bytes(1.0, t, zero, dp))


@pytest.mark.parametrize("preset, expected", [
    ("deepspeed", 16.0),   # ZeRO paper, Sec. 3.1: 2 + 2 + 12
    ("megatron", 18.0),    # Megatron-LM dist_optimizer.md: bf16 params, fp32 grads: 18
    ("fsdp", 16.0),        # PyTorch FSDP: fp32 params + grads + m + v
])
def test_presets_bytes_per_param(preset, expected):
    assert _bytes_per_param(mixed_precision=preset) == pytest.approx(expected)


def test_megatron_distributed_optimizer_is_6_plus_12_over_dp():
    for dp in (2, 8, 64):
        assert _bytes_per_param(1, dp, mixed_precision="megatron") == pytest.approx(6 + 12 / dp)


def test_fsdp_full_shard_is_16_over_dp():
    assert _bytes_per_param(3, 8, mixed_precision="fsdp") == pytest.approx(16 / 8)


def test_default_is_the_zero_paper_convention():
    assert TrainingSpec(global_batch=1).mixed_precision == "deepspeed"
    assert _bytes_per_param() == _bytes_per_param(mixed_precision="deepspeed")


def test_explicit_keys_override_the_preset():
    assert _bytes_per_param(mixed_precision="megatron", grad_precision="bf16") == 16.0
    assert _bytes_per_param(mixed_precision="deepspeed", grad_precision="fp32") == 18.0
    assert _bytes_per_param(mixed_precision="megatron", master_weights=False) == 14.0


def test_reduction_dtype():
    assert TrainingSpec(global_batch=1).grad_reduce_precision_ == "bf16"
    assert TrainingSpec(global_batch=1, mixed_precision="megatron").grad_reduce_precision_ == "fp32"
    assert TrainingSpec(global_batch=1, mixed_precision="fsdp").grad_reduce_precision_ == "fp32"
    assert TrainingSpec(global_batch=1, mixed_precision="megatron",
                        grad_reduce_precision="bf16").grad_reduce_precision_ == "bf16"


def test_dp_traffic_uses_the_reduction_dtype():
    over = {"plan.dp": 8, "plan.tp": 1, "plan.pp": 1, "cluster.nodes": 1,
            "plan.dp_overlap": False}
    ds = simulate("gpt2", "dgx-a100", **over)
    mg = simulate("gpt2", "dgx-a100", **over, **{"training.mixed_precision": "megatron"})
    bf = simulate("gpt2", "dgx-a100", **over, **{"training.mixed_precision": "megatron",
                                                 "training.grad_reduce_precision": "bf16"})
    # fp32 reduction moves twice the bytes of the 16-bit one (bandwidth-bound buckets).
    assert mg.breakdown_s["dp_comm"] > 1.3 * ds.breakdown_s["dp_comm"]  # 2x bytes + latency
    assert bf.breakdown_s["dp_comm"] == pytest.approx(ds.breakdown_s["dp_comm"])


# ---------------------------------------------------------------------------------------
# FP8

# Shapes whose linear GEMMs are large enough for FP8 to pay for its remaining separate
# cast kernels (four per layer: out_proj's input, three output gradients). Below that,
# when every per-device GEMM is launch-bound (h 1024 split over TP 4 with 1024 tokens),
# those kernels cost more than FP8 saves: a real effect (TE documents FP8 speed-ups for
# large GEMMs only), checked by test_fp8_slower_only_by_its_casts.
MODELS = [
    ModelSpec(layers=2, hidden=h, heads=h // 128, vocab=32000, seq_len=s, gated_mlp=g)
    for h in (2048, 4096, 8192) for s in (1024, 4096) for g in (False, True)
]


def _plan(model: ModelSpec, tp: int, mb: int) -> Plan:
    return Plan(tp=tp, pp=1, dp=1, virtual_stages=1, sequence_parallel=tp > 1, zero=0,
                recompute="none", schedule="1f1b", micro_batch=mb, global_batch=mb,
                stage_layers=(model.layers,))


@pytest.mark.parametrize("device", ["H100-SXM5-80GB", "H200-SXM-141GB", "B200", "MI300X"])
@pytest.mark.parametrize("model", MODELS)
def test_fp8_never_slower_than_bf16(device, model):
    dev = get_device(device)
    for tp in (1, 4):
        for mb in (1, 4):
            plan = _plan(model, tp, mb)
            times = {p: op_times(model, TrainingSpec(global_batch=mb, micro_batch=mb,
                                                     precision=p), plan, dev)
                     for p in ("bf16", "fp8")}
            total = {p: sum(t.values()) for p, t in times.items()}
            assert total["fp8"] <= total["bf16"] * (1 + 1e-12)


@pytest.mark.parametrize("device", ["H100-SXM5-80GB", "B200"])
@pytest.mark.parametrize("hidden,tp", [(1024, 1), (1024, 4), (2048, 8)])
def test_fp8_slower_only_by_its_casts(device, hidden, tp):
    """Every FP8 GEMM is at least as fast as its BF16 twin, and the ops other than the
    separate cast kernels never take longer: where an fp8 layer is slower, its casts are
    why (launch-bound shapes)."""
    dev = get_device(device)
    model = ModelSpec(layers=2, hidden=hidden, heads=hidden // 128, vocab=32000, seq_len=1024)
    plan = _plan(model, tp, 1)
    for pass_ in ("fwd", "bwd"):
        ops = {p: ops_mod.layer_ops(model, TrainingSpec(global_batch=1, precision=p), plan,
                                    pass_) for p in ("bf16", "fp8")}
        bf = {op.name: op_time_s(op, dev, "bf16") for op in ops["bf16"]}
        f8 = {op.name: op_time_s(op, dev, "fp8") for op in ops["fp8"]}
        for name, t in f8.items():
            if "cast" not in name:
                assert t <= bf[name] * (1 + 1e-12), name
        casts = [n for n in f8 if "cast" in n]
        assert len(casts) == (1 if pass_ == "fwd" else 3)


def test_fp8_only_linear_gemms_and_casts():
    model = MODELS[1]
    plan = _plan(model, 1, 1)
    t8 = TrainingSpec(global_batch=1, precision="fp8")
    fwd = ops_mod.layer_ops(model, t8, plan, "fwd")
    fp8 = {op.name for op in fwd if op.fp8}
    dense = {"qkv_proj", "out_proj", "mlp_up", "mlp_down"}   # no MoE, no latent attention
    assert dense <= ops_mod.FP8_GEMMS
    assert fp8 == dense
    assert not any(op.fp8 for op in ops_mod.head_ops(model, t8, plan, "fwd"))
    # Casts fused into the norm / activation kernels (TE LayerNormLinear, LayerNormMLP)
    # run no kernel of their own.
    casts = {op.name for op in fwd if op.name.endswith(".cast")}
    assert casts == {n + ".cast" for n in dense - ops_mod.FP8_FUSED_INPUT_CASTS}
    bwd = ops_mod.layer_ops(model, t8, plan, "bwd")
    grad_casts = {op.name for op in bwd if op.name.endswith(".grad_cast")}
    fused = set() if model.gated_mlp else ops_mod.FP8_FUSED_GRAD_CASTS
    assert grad_casts == {n + ".grad_cast" for n in dense - fused}
    assert not any(op.name.endswith(".cast.grad") for op in bwd)


def test_fp8_weight_cache_in_memory():
    bf = simulate("llama3-8b", "dgx-h100", **{"cluster.nodes": 1})
    f8 = simulate("llama3-8b", "dgx-h100", **{"cluster.nodes": 1, "training.precision": "fp8"})
    assert f8.memory["devices"][0]["params_bytes"] > bf.memory["devices"][0]["params_bytes"]


def test_fp8_mfu_against_the_bf16_peak():
    f8 = simulate("llama3-8b", "dgx-h100", **{"cluster.nodes": 1, "training.precision": "fp8"})
    assert f8.peak_flop_per_s == get_device("H100-SXM5-80GB").peak("bf16")


def test_fp8_on_a100_refused_at_training_precision():
    with pytest.raises(ConfigError) as err:
        simulate("gpt2", "dgx-a100", **{"training.precision": "fp8"})
    assert err.value.key == "training.precision"
    assert "A100" in str(err.value) and "fp8" in str(err.value)


# ---------------------------------------------------------------------------------------
# SM counts


@pytest.mark.parametrize("name, sms", [("A100-SXM4-80GB", 108), ("A100-SXM4-40GB", 108),
                                       ("H100-SXM5-80GB", 132), ("H200-SXM-141GB", 132),
                                       ("B200", 148), ("MI300X", 304)])
def test_catalog_sm_counts(name, sms):
    assert get_device(name).efficiency.sm_count == sms


def test_wave_quantisation_uses_the_device_sm_count():
    a100, h100 = get_device("A100-SXM4-80GB"), get_device("H100-SXM5-80GB")
    # 132 output tiles of 128 x 128: one full wave on H100 (132 SMs), a second nearly
    # idle wave on A100 (108 SMs).
    m, n, k = 128 * 132, 128, 8192
    assert gemm_efficiency(m, n, k, h100) == pytest.approx(h100.efficiency.gemm_max)
    assert gemm_efficiency(m, n, k, a100) == pytest.approx(
        a100.efficiency.gemm_max * 132 / 216)


@pytest.mark.parametrize("zero, preset", [(0, "megatron"), (1, "megatron"), (3, "fsdp")])
def test_fp8_params_store_the_gemm_weights_in_fp8_only(zero, preset):
    """FP8 weights (Transformer Engine fp8_model_init, NeMo fp8_params): the linear
    layers' weights keep only their FP8 cache (FP8_WEIGHT_CACHE_BYTES each), not the
    16-bit copy beside it; gradients and optimizer state do not change."""
    params, gemm, dp = 1e9, 0.8e9, 8
    base = TrainingSpec(global_batch=8, precision="fp8", mixed_precision=preset)
    fp8w = TrainingSpec(global_batch=8, precision="fp8", mixed_precision=preset,
                        fp8_params=True)
    p0, g0, o0 = model_state_bytes(params, base, zero, dp, fp8_params=gemm)
    p1, g1, o1 = model_state_bytes(params, fp8w, zero, dp, fp8_params=gemm)
    shard = dp if zero >= 3 else 1
    assert p0 - p1 == pytest.approx(base.stored_weight_bytes * gemm / shard)
    assert (g1, o1) == (g0, o0)
    # What stays per GEMM weight is the FP8 cache alone.
    assert p1 == pytest.approx((base.stored_weight_bytes * (params - gemm)
                                + FP8_WEIGHT_CACHE_BYTES * gemm) / shard)


def test_fp8_params_lower_the_peak_and_need_fp8():
    over = {"cluster.nodes": 8, "training.precision": "fp8"}
    on = simulate("llama2-7b", "dgx-h100", **over, **{"training.fp8_params": True})
    off = simulate("llama2-7b", "dgx-h100", **over)
    assert on.memory["peak_bytes"] < off.memory["peak_bytes"]
    assert on.step_time_s == off.step_time_s          # memory only (see TrainingSpec)
    with pytest.raises(ConfigError, match="fp8_params"):
        simulate("llama2-7b", "dgx-h100", **{"training.fp8_params": True})
