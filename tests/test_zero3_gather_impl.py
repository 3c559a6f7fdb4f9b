"""plan.zero3_gather_impl (issue 15): DeepSpeed's 2021 per-parameter list all-gather
against the coalesced gather, from the pure counts to whole steps."""

import pytest

from simwall import simulate
from simwall.config import FRAMEWORK_PRESETS, load_workload
from simwall.costing.zero import (
    COPY_OP_S,
    VIEW_OP_S,
    list_copy_s,
    param_tensors_per_layer,
    zero3_cost,
)


def test_parameter_tensors_of_a_layer():
    gpt3 = load_workload("gpt3-175b").model
    # GPT-3 175B: QKV, projection, fc1, fc2 weights; biases and LayerNorms (<= 49152
    # elements) stay under DeepSpeed's persistence threshold.
    assert param_tensors_per_layer(gpt3) == 4
    # With no threshold every tensor is gathered: 4 weights, 4 biases, 2 x (gain, bias).
    assert param_tensors_per_layer(gpt3, persistence=0) == 12
    # Llama 2 7B: no biases, gated MLP (5 weights), two RMSNorm gains.
    assert param_tensors_per_layer(load_workload("llama2-7b").model, persistence=0) == 7
    assert param_tensors_per_layer(load_workload("llama2-7b").model) == 5


def test_list_copies_grow_with_the_ranks():
    assert list_copy_s(1536) == pytest.approx(4 * list_copy_s(384))
    # Per rank: DeepSpeed's narrow view plus one PyTorch copy_ (10 us: pytorch#37048).
    assert COPY_OP_S == pytest.approx(10e-6)
    assert list_copy_s(8) == pytest.approx(8 * (VIEW_OP_S + COPY_OP_S))


def test_every_preset_gathers_coalesced():
    assert {p["zero3_gather_impl"] for p in FRAMEWORK_PRESETS.values()} == {"coalesced"}


_SC21 = {"plan.tp": 1, "plan.pp": 1, "plan.zero": 3, "plan.recompute": "full",
         "plan.sequence_parallel": False, "plan.framework": "deepspeed",
         "training.global_batch": 1536}
_2021 = {"plan.zero3_gather_impl": "per_param_list", "plan.zero3_prefetch": 0}


def _sc21(nodes, mb, **kw):
    return simulate("gpt3-175b", "dgx-a100", **{**_SC21, "cluster.nodes": nodes,
                                               "plan.dp": nodes * 8,
                                               "training.micro_batch": mb, **kw})


def test_default_gather_is_the_coalesced_one():
    a = _sc21(48, 4)
    b = _sc21(48, 4, **{"plan.zero3_gather_impl": "coalesced"})
    assert a.step_time_s == b.step_time_s and a.breakdown_s == b.breakdown_s


@pytest.mark.parametrize("zero", [1, 2])
def test_no_zero3_no_change(zero):
    small = {"cluster.nodes": 2, "plan.tp": 1, "plan.pp": 1, "plan.dp": 16,
             "plan.zero": zero, "training.global_batch": 32, "training.micro_batch": 2}
    a = simulate("llama2-7b", **small)
    b = simulate("llama2-7b", **{**small, "plan.zero3_gather_impl": "per_param_list"})
    assert a.step_time_s == b.step_time_s and a.breakdown_s == b.breakdown_s


def test_deepspeed_2021_zero3_throughput_falls_with_dp():
    # Issue 15's Done-when (Narayanan et al. SC21 Table 2: 144 / 88 / 44 TFLOP/s): at a
    # fixed batch, 384 -> 1536 GPUs, the per-GPU throughput falls below 60 %, and the
    # step's events put the loss in exposed DP (ZeRO-3 gather) communication.
    runs = {n: _sc21(n // 8, 1536 // n, **_2021) for n in (384, 768, 1536)}
    tf = {n: r.hardware_tflops_per_device for n, r in runs.items()}
    assert tf[384] > tf[768] > tf[1536]
    assert tf[1536] < 0.6 * tf[384]
    share = {n: r.breakdown_s["dp_comm"] / r.step_time_s for n, r in runs.items()}
    assert share[384] < share[768] < share[1536]
    assert share[1536] > 0.4
    # The per-rank copies, not the unoverlapped bytes alone, make the fall: the same
    # steps with one coalesced gather per unit keep more of the 384-GPU throughput.
    coalesced = {n: _sc21(n // 8, 1536 // n, **{**_2021, "plan.zero3_gather_impl":
                                                "coalesced"}).hardware_tflops_per_device
                 for n in (384, 1536)}
    assert coalesced[1536] / coalesced[384] > tf[1536] / tf[384]
    for n in (384, 1536):
        assert coalesced[n] > tf[n]


def _z3(impl):
    from simwall import api
    prep = api.prepare("gpt3-175b", "dgx-a100", {**_SC21, "cluster.nodes": 4, "plan.dp": 32,
                                                 "training.micro_batch": 1,
                                                 "training.global_batch": 64,
                                                 **_2021, "plan.zero3_gather_impl": impl})
    model, training, plan = prep.workload.model, prep.workload.training, prep.plan
    return prep, zero3_cost(model, training, plan, prep.topology, 0, True)


def test_per_param_reduce_scatter_covers_every_gradient():
    # DeepSpeed 2021 reduce-scatters each parameter's gradient by its own list
    # collective, the resident biases and LayerNorms too: 12 per GPT-3 layer and
    # micro-batch, against 4 gathers (the weights) and 4 coalesced reduce-scatters.
    from simwall.model import memory
    prep, z3 = _z3("per_param_list")
    _, c = _z3("coalesced")
    plan, model = prep.plan, prep.workload.model
    runs = plan.micro_batches * plan.layers_on_stage(0)
    rs = [t for t in z3.traffic if t.kind == "reduce_scatter"]
    rs_c = [t for t in c.traffic if t.kind == "reduce_scatter"]
    assert sum(t.count for t in rs) == runs * 12
    assert sum(t.count for t in rs_c) == runs * 4
    layer_bytes = memory.layer_params(model, 1) * 2           # fp16 gradients
    assert sum(t.count * t.bytes_ for t in rs) == pytest.approx(runs * layer_bytes)
    # Per unit (4 per layer): three list reduce-scatters, each paying its NCCL time and
    # one view and one copy_ per rank, above the coalesced unit's one collective.
    assert z3.reduce_scatter_s > c.reduce_scatter_s + 3 * list_copy_s(32)
