"""Physical invariants of a simulated step, as property tests over random valid configs.

Small models (2-8 layers, hidden 256-2048) on 1-4 nodes of ``single-node`` / ``dgx-a100``
with TP / PP / DP degrees drawn from divisors, so one simulation takes ~10-30 ms. Every
property holds for any correct simulator; none uses a number our code produced before.
"""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simwall.api import simulate
from simwall.config import Workload, load_cluster, validate
from simwall.hardware.catalog import get_device, resolve_link
from simwall.report import BREAKDOWN_KEYS

PROPS = settings(deadline=None, derandomize=True, max_examples=200,
                 suppress_health_check=[HealthCheck.too_slow])
REL = 1e-9


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


@st.composite
def configs(draw, min_nodes: int = 1, min_dp: int = 1):
    """(workload, cluster name, cluster overrides): a random valid small run with at
    least ``min_dp`` data-parallel replicas."""
    cluster = draw(st.sampled_from(["single-node", "dgx-a100"]))
    nodes = 1 if cluster == "single-node" else draw(st.integers(min_nodes, 4))
    world = 8 * nodes
    heads = draw(st.sampled_from([2, 4, 8, 16]))
    head_dim = draw(st.sampled_from([32, 64, 128]))
    hidden = heads * head_dim
    if not 256 <= hidden <= 2048:
        hidden = max(256, min(2048, hidden))
        head_dim = hidden // heads
    layers = draw(st.integers(2, 8))
    tp = draw(st.sampled_from([d for d in _divisors(8) if heads % d == 0
                               and world // d >= min_dp]))
    pp = draw(st.sampled_from([d for d in _divisors(world // tp)
                               if d <= layers and world // (tp * d) >= min_dp]))
    dp = world // (tp * pp)
    schedule = draw(st.sampled_from(["1f1b", "gpipe", "interleaved"] if pp > 1 else ["1f1b"]))
    v = 1
    if schedule == "interleaved":
        v = draw(st.sampled_from([x for x in (1, 2) if layers >= pp * x]))
    micro_batch = draw(st.integers(1, 4))
    m = draw(st.integers(1, 8))
    if schedule == "interleaved":
        m = pp * draw(st.integers(1, 2))
    doc = {
        "name": "prop",
        "model": {"kind": draw(st.sampled_from(["gpt", "bert"])), "layers": layers,
                  "hidden": hidden, "heads": heads, "vocab": draw(st.integers(1000, 32000)),
                  "seq_len": draw(st.sampled_from([128, 256, 512, 1024, 2048])),
                  "gated_mlp": draw(st.booleans())},
        "training": {"global_batch": dp * micro_batch * m, "micro_batch": micro_batch,
                     "precision": draw(st.sampled_from(["bf16", "fp16"])),
                     "optimizer": draw(st.sampled_from(["adam", "sgd"]))},
        "plan": {"tp": tp, "pp": pp, "dp": dp, "zero": draw(st.integers(0, 3)),
                 "recompute": draw(st.sampled_from(["none", "selective", "full"])),
                 "schedule": schedule, "virtual_stages": v,
                 "sequence_parallel": draw(st.booleans()),
                 "dp_overlap": draw(st.booleans())},
        "defaults": {"cluster": cluster},
    }
    workload = validate(Workload, doc, "<property test>")
    return workload, cluster, {"cluster.nodes": nodes}


@PROPS
@given(cfg=configs())
def test_breakdown_bounds_and_mfu(cfg):
    workload, cluster, over = cfg
    r = simulate(workload, cluster, **over)
    step = r.step_time_s
    assert math.isfinite(step) and step > 0
    parts = r.breakdown_s
    assert set(BREAKDOWN_KEYS) <= set(parts)
    for k, v in parts.items():
        assert v >= 0, f"breakdown {k} = {v} < 0"
    assert math.isclose(sum(parts[k] for k in BREAKDOWN_KEYS), step, rel_tol=REL), parts
    # The critical stage's compute alone fits in the step ...
    assert parts["compute"] <= step * (1 + REL)
    # ... and no device beats its peak: the average device's share of the hardware FLOP
    # at peak FLOP/s is a lower bound on the busiest device's time.
    assert step * (1 + REL) >= r.hardware_flop / (r.world * r.peak_flop_per_s)
    assert 0 < r.mfu <= 1
    assert 0 < r.hfu <= 1
    if r.inputs["model.attention"] == "eager":
        # Model FLOP count the full s^2 attention; a fused causal kernel executes half of
        # it (docs/cost-model.md), so only the eager kernels execute at least the model FLOP.
        assert r.model_flop <= r.hardware_flop * (1 + REL)
    # Memory parts are non-negative and add up.
    for d in r.memory["devices"]:
        parts_b = [d[k] for k in ("params_bytes", "grads_bytes", "optimizer_bytes",
                                  "activations_bytes", "other_bytes", "reserved_bytes")]
        assert min(parts_b) >= 0
        assert math.isclose(sum(parts_b), d["peak_bytes"], rel_tol=REL)


@PROPS
@given(cfg=configs())
def test_engine_memory_timeline_peaks_at_the_closed_form(cfg):
    """The engine allocates and frees activations as the schedule runs; the closed form
    counts what each chunk holds in flight from the same task order. They agree on every
    device, so the plan search's memory filter is the engine's."""
    workload, cluster, over = cfg
    r = simulate(workload, cluster, **over)
    for d in r.memory["devices"]:
        assert math.isclose(d["peak_bytes"], d["closed_form_peak_bytes"], rel_tol=1e-9), d


def _base_numbers(cluster: str):
    cl = load_cluster(cluster)
    dev = get_device(cl.device)
    links = {part: resolve_link(getattr(cl, part).link) for part in ("intra", "inter", "host")}
    return dev, links


@PROPS
@given(cfg=configs(), upgrade=st.sampled_from(["memory_bandwidth", "links", "flops", "all"]))
def test_more_bandwidth_or_flops_is_never_slower(cfg, upgrade):
    """Doubling a resource never slows a step. Links are scaled per class (every link of
    the class together): max-min fair sharing is not monotone in one link's capacity."""
    workload, cluster, over = cfg
    before = simulate(workload, cluster, **over).step_time_s
    dev, links = _base_numbers(cluster)
    faster = dict(over)
    if upgrade in ("memory_bandwidth", "all"):
        faster["cluster.device.memory_bandwidth"] = 2 * dev.memory_bandwidth_bytes_per_s
    if upgrade in ("flops", "all"):
        faster["cluster.device.peak_flops"] = {p: 2 * v for p, v in dev.peak_flop_per_s.items()}
    if upgrade in ("links", "all"):
        for part, link in links.items():
            faster[f"cluster.{part}.link.bandwidth"] = 2 * link.bandwidth_bytes_per_s
    after = simulate(workload, cluster, **faster).step_time_s
    assert after <= before * (1 + REL), f"{upgrade} x2: {before} -> {after}"


@PROPS
@given(cfg=configs(min_dp=2))
def test_more_data_parallelism_never_needs_more_memory(cfg):
    """Twice the nodes, twice the DP degree, same batch per replica: per-device memory
    cannot grow (model states shard further with ZeRO, activations stay the same).
    From DP >= 2: going from 1 to 2 replicas adds the DP gradient-bucket buffers
    (memory.GRAD_BUCKETS_IN_FLIGHT), which a single replica does not need. The bucket is
    held fixed: Megatron-Core's default grows with the DP size (1M parameters per rank
    above 40 ranks, plan.frameworks.dp_bucket_bytes_for), a buffer, not a model state."""
    workload, cluster, over = cfg
    if cluster == "single-node":
        cluster, over = "dgx-a100", {"cluster.nodes": 1}
    over = {**over, "plan.dp_bucket_bytes": 25e6}
    nodes = over["cluster.nodes"]
    p, t = workload.plan, workload.training
    small = simulate(workload, cluster, **{**over, "plan.dp": "auto"})
    big = simulate(workload, cluster, **{"cluster.nodes": 2 * nodes, "plan.dp": "auto",
                                         "training.global_batch": 2 * t.global_batch,
                                         "plan.dp_bucket_bytes": 25e6})
    assert big.plan["dp"] == 2 * small.plan["dp"]
    assert big.plan["micro_batches"] == small.plan["micro_batches"]
    assert (p.tp, p.pp) == (big.plan["tp"], big.plan["pp"])
    assert big.memory["peak_bytes"] <= small.memory["peak_bytes"] * (1 + REL)
    for a, b in zip(small.memory["devices"], big.memory["devices"]):
        assert b["peak_bytes"] <= a["peak_bytes"] * (1 + REL), (a, b)


def _model_state(r) -> list[float]:
    return [d["params_bytes"] + d["grads_bytes"] + d["optimizer_bytes"]
            for d in r.memory["devices"]]


@settings(PROPS, max_examples=200)
@given(cfg=configs())
def test_higher_zero_stage_never_more_model_state(cfg):
    workload, cluster, over = cfg
    states = [_model_state(simulate(workload, cluster, **{**over, "plan.zero": z}))
              for z in range(4)]
    for z in range(3):
        for stage, (a, b) in enumerate(zip(states[z], states[z + 1])):
            assert b <= a * (1 + REL), f"stage {stage}: zero {z} {a} -> zero {z + 1} {b}"


@PROPS
@given(cfg=configs(), per_device=st.booleans(),
       offload=st.sampled_from(["none", "optimizer", "optimizer+params"]))
def test_step_at_least_busiest_link_time(cfg, per_device, offload):
    """No link carries more bytes in a step than its bandwidth moves in the step time
    (``critical.busiest_link``: the most loaded link, host PCIe links included)."""
    workload, cluster, over = cfg
    r = simulate(workload, cluster, per_device=per_device,
                 **{**over, "plan.offload": offload})
    link = r.critical["busiest_link"]
    if link is None:                   # nothing crosses a link (one device, no offload)
        assert r.world == 1
        return
    assert link["bytes"] > 0 and link["capacity_bytes_per_s"] > 0
    assert math.isclose(link["busy_s"], link["bytes"] / link["capacity_bytes_per_s"],
                        rel_tol=REL)
    assert r.step_time_s >= link["busy_s"] * (1 - REL), (link, r.step_time_s, r.plan)
