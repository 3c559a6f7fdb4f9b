"""Tests of simwall.hardware.efficiency: fallback efficiencies and the GEMM efficiency curve."""

from __future__ import annotations

import pytest

from simwall.config import DeviceSpec
from simwall.errors import SimwallError
from simwall.hardware import efficiency as eff_mod
from simwall.hardware.efficiency import FALLBACK

# NVIDIA A100 Tensor Core GPU datasheet (2021), SXM4 80GB: 312 TFLOP/s bf16 dense,
# 19.5 TFLOP/s fp32, 2,039 GB/s HBM2e; 108 SMs (A100 architecture whitepaper).
A100 = DeviceSpec(name="A100-test", peak_flops={"bf16": 312e12, "fp32": 19.5e12},
                  memory_capacity=80e9, memory_bandwidth=2.039e12,
                  efficiency={"sm_count": 108})


def test_fallback_used_field_by_field():
    bare = DeviceSpec(name="bare", peak_flops={"bf16": 312e12, "fp32": 19.5e12},
                      memory_capacity=80e9, memory_bandwidth=2.039e12)
    assert eff_mod.efficiency_of(bare) == FALLBACK["gpu"]
    assert FALLBACK["gpu"].sm_count == 0           # no silent A100 SM count (issue 14)
    assert eff_mod.efficiency_of(A100) == FALLBACK["gpu"].model_copy(update={"sm_count": 108})
    custom = DeviceSpec.model_validate({**A100.model_dump(by_alias=True),
                                        "efficiency": {"gemm_max": 0.5}})
    eff = eff_mod.efficiency_of(custom)
    assert eff.gemm_max == 0.5 and eff.memory_bw == FALLBACK["gpu"].memory_bw


def test_gemm_efficiency_quantisation():
    gmax = FALLBACK["gpu"].gemm_max
    # 3456 x 4096 output in 128 x 128 tiles = 864 tiles = 8 full waves over 108 SMs (the
    # shape NVIDIA used to measure A100 peak, github.com/NVIDIA/cutlass/issues/106).
    assert eff_mod.gemm_efficiency(3456, 4096, 8192, A100) == pytest.approx(gmax)
    # One tile more than a full wave leaves the second wave nearly idle.
    full = eff_mod.gemm_efficiency(128 * 108, 128, 4096, A100)
    spill = eff_mod.gemm_efficiency(128 * 109, 128, 4096, A100)
    assert spill < 0.6 * full
    # A partial tile computes padding (tile quantisation).
    assert eff_mod.gemm_efficiency(129, 128 * 108, 4096, A100) < eff_mod.gemm_efficiency(
        128, 128 * 108, 4096, A100)
    half = DeviceSpec.model_validate({**A100.model_dump(by_alias=True),
                                      "efficiency": {"gemm_half_flop": 1e9, "sm_count": 0}})
    f = 2.0 * 500 * 1000 * 1000
    assert eff_mod.gemm_efficiency(1000, 1000, 500, half) == pytest.approx(
        gmax * f / (f + 1e9) * (1000 * 1000) / (1024 * 1024))
    with pytest.raises(SimwallError):
        eff_mod.gemm_efficiency(-1, 2, 3, A100)


def test_efficiency_is_hardware_layer():
    """The efficiency model sits below the model: it imports config and errors only."""
    import ast
    import pathlib

    tree = ast.parse(pathlib.Path(eff_mod.__file__).read_text(encoding="utf-8"))
    relative = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level}
    assert relative <= {"config", "errors"}
