"""Tests of simwall.model.optime: the roofline with efficiency, stated as physics properties."""

from __future__ import annotations

import ast
import pathlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simwall.config import DeviceSpec, EfficiencySpec, TrainingSpec
from simwall.errors import SimwallError
from simwall.hardware.efficiency import FALLBACK
from simwall.model import optime as cost
from simwall.model.ops import Op

# NVIDIA A100 Tensor Core GPU datasheet (2021), SXM4 80GB: 312 TFLOP/s bf16 dense,
# 19.5 TFLOP/s fp32, 2,039 GB/s HBM2e.
A100 = DeviceSpec(name="A100-test", peak_flops={"bf16": 312e12, "fp32": 19.5e12},
                  memory_capacity=80e9, memory_bandwidth=2.039e12)


def _gemm(m, n, k, count=1, e=2):
    return Op(name="g", kind="matmul", flop=2.0 * m * n * k * count,
              bytes_read=float(count * (m * k + k * n) * e), bytes_written=float(count * m * n * e),
              gemm=(m, n, k), count=count)


def test_bound_and_ridge():
    big = _gemm(8192, 8192, 8192)
    vec = _gemm(1, 8192, 8192)  # matrix-vector: ~1 FLOP/byte
    norm = Op(name="ln", kind="reduction", flop=7e6, bytes_read=2e6, bytes_written=2e6)
    assert cost.bound(big, A100, "bf16") == "compute"
    assert cost.bound(vec, A100, "bf16") == "memory"
    assert cost.bound(norm, A100, "bf16") == "memory"
    eff = FALLBACK["gpu"]
    assert cost.ridge_point(A100, "bf16") == pytest.approx(
        312e12 * eff.gemm_max / (2.039e12 * eff.memory_bw))
    assert big.intensity > cost.ridge_point(A100, "bf16") > vec.intensity


def _device(peak, bw, gmax, mbw, launch):
    return DeviceSpec(name="d", peak_flops={"bf16": peak, "fp32": peak / 8},
                      memory_capacity=1e9, memory_bandwidth=bw,
                      efficiency=EfficiencySpec(gemm_max=gmax, memory_bw=mbw, launch_s=launch,
                                                sm_count=108, gemm_tile=128))


ops_strategy = st.one_of(
    st.builds(_gemm, st.integers(1, 9000), st.integers(1, 9000), st.integers(1, 9000),
              st.integers(1, 64)),
    st.builds(lambda f, r, w, kind: Op(name="e", kind=kind, flop=f, bytes_read=r,
                                       bytes_written=w),
              st.floats(0, 1e12), st.floats(0, 1e10), st.floats(0, 1e10),
              st.sampled_from(["elementwise", "reduction"])),
)


@settings(deadline=None, derandomize=True, max_examples=60)
@given(op=ops_strategy, peak=st.floats(1e12, 2e15), bw=st.floats(1e10, 1e13),
       gmax=st.floats(0.1, 1.0), mbw=st.floats(0.1, 1.0), launch=st.floats(0, 1e-5))
def test_roofline_properties(op, peak, bw, gmax, mbw, launch):
    dev = _device(peak, bw, gmax, mbw, launch)
    faster = _device(peak, 2 * bw, gmax, mbw, launch)
    t = cost.op_time_s(op, dev, "bf16")
    # Doubling memory bandwidth never slows an op.
    assert cost.op_time_s(op, faster, "bf16") <= t
    # Never faster than either roof at 100 % efficiency.
    assert t >= op.flop / peak * (1 - 1e-12)
    assert t >= op.bytes_ / bw * (1 - 1e-12)
    assert cost.ops_time_s([op, op], dev, "bf16") == pytest.approx(2 * t)


def test_optimizer_step():
    # ZeRO convention (Rajbhandari et al. 2020, Sec. 3.1): fp32 master + m + v (12 B) and
    # 16-bit gradients; the update reads 4+8+2 and writes 4+8+2 bytes per parameter.
    assert cost.optimizer_step_bytes(1.0, "adam") == 28.0
    # Megatron-LM's fp32 main gradients read 2 bytes more.
    meg = TrainingSpec(global_batch=8, grad_precision="fp32")
    assert cost.optimizer_step_bytes(1.0, "adam", meg) == 30.0
    assert cost.optimizer_step_bytes(1.0, "sgd") < cost.optimizer_step_bytes(1.0, "adam")
    t1 = cost.optimizer_step_time_s(1e9, "adam", A100)
    eff = FALLBACK["gpu"]
    assert t1 == pytest.approx(28e9 / (2.039e12 * eff.memory_bw) + eff.launch_s)
    assert cost.optimizer_step_time_s(0, "adam", A100) == 0.0
    with pytest.raises(SimwallError):
        cost.optimizer_step_bytes(1.0, "lion")


@pytest.mark.parametrize("module", ["optime.py", "ops.py", "roofline.py"])
def test_pure_modules_do_not_import_simpy(module):
    src = pathlib.Path(cost.__file__).with_name(module).read_text()
    names = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    assert "simpy" not in names
