"""End-to-end: simulate() on bundled workloads; modes agree; memory timeline vs closed form."""

import pytest

from simwall import api
from simwall.errors import ConfigError
from simwall.report import BREAKDOWN_KEYS

SMALL = {"model.layers": 8, "model.hidden": 2048, "model.heads": 16, "model.kv_heads": 16,
         "model.ffn_hidden": 8192, "model.seq_len": 1024, "model.vocab": 32000}


def _sim(**over):
    base = dict(SMALL)
    base.update(over)
    return api.simulate("gpt3-175b", "dgx-a100", **base)


PLANS = [
    {"plan.tp": 2, "plan.pp": 2, "plan.dp": 4, "training.global_batch": 32, "cluster.nodes": 2},
    {"plan.tp": 4, "plan.pp": 2, "plan.dp": 2, "training.global_batch": 16, "cluster.nodes": 2,
     "plan.schedule": "interleaved", "plan.virtual_stages": 2},
    {"plan.tp": 1, "plan.pp": 4, "plan.dp": 4, "training.global_batch": 64, "cluster.nodes": 2,
     "plan.schedule": "gpipe", "plan.recompute": "full", "plan.sequence_parallel": False},
    {"plan.tp": 8, "plan.pp": 1, "plan.dp": 2, "training.global_batch": 16, "cluster.nodes": 2,
     "plan.zero": 3, "plan.recompute": "none"},
]


@pytest.mark.parametrize("over", PLANS)
def test_breakdown_sums_and_flops_are_consistent(over):
    r = _sim(**over)
    assert set(r.breakdown_s) == set(BREAKDOWN_KEYS)
    assert all(v >= 0 for v in r.breakdown_s.values())
    assert sum(r.breakdown_s.values()) == pytest.approx(r.step_time_s, rel=1e-9)
    assert 0 < r.mfu <= r.hfu <= 1
    assert r.step_time_s >= r.bounds["compute_only_s"] * (1 - 1e-9)


@pytest.mark.parametrize("over", PLANS)
def test_per_device_mode_agrees_with_symmetric_mode(over):
    sym = _sim(**over)
    full = api.simulate("gpt3-175b", "dgx-a100", per_device=True, **dict(SMALL, **over))
    assert full.engine["streams"] == full.plan["pp"] * full.plan["dp"]
    assert full.step_time_s == pytest.approx(sym.step_time_s, rel=0.01)


@pytest.mark.parametrize("over", PLANS)
def test_memory_timeline_matches_closed_form(over):
    # The engine's activation peak (allocations as the schedule runs) against the closed
    # form (micro-batches in flight x activations per micro-batch).
    r = _sim(**over)
    for dev in r.memory["devices"]:
        assert dev["peak_bytes"] == pytest.approx(dev["closed_form_peak_bytes"], rel=0.05)


@pytest.mark.parametrize("layers, pp, v, stage_layers", [
    (8, 2, 2, None),              # equal chunks
    (10, 2, 2, None),             # 10 layers on 4 chunks: 2, 3, 3, 2
    (8, 2, 3, None),              # 8 on 6 chunks: some of 1 layer, some of 2
    (8, 2, 2, [3, 1, 1, 3]),      # a hand-made split: the first chunks are the heavy ones
])
def test_interleaved_closed_form_counts_chunks_as_the_schedule_holds_them(layers, pp, v,
                                                                          stage_layers):
    """With chunks of unequal size the activations held at the peak depend on which chunks
    are in flight; the closed form walks the same task order as the engine, so both give
    the same peak on every stage (it was up to 13% below on Megatron's 145.6B model with
    PP 12 x 4 chunks)."""
    over = {"model.layers": layers, "plan.tp": 4, "plan.pp": pp, "plan.dp": 2,
            "training.global_batch": 16, "cluster.nodes": 2, "plan.schedule": "interleaved",
            "plan.virtual_stages": v}
    if stage_layers:
        over["plan.stage_layers"] = stage_layers
    r = _sim(**over)
    for dev in r.memory["devices"]:
        assert dev["peak_bytes"] == pytest.approx(dev["closed_form_peak_bytes"], rel=1e-9)


def test_bubble_shrinks_with_more_micro_batches():
    few = _sim(**dict(PLANS[0], **{"training.global_batch": 8}))
    many = _sim(**dict(PLANS[0], **{"training.global_batch": 64}))
    assert many.breakdown_s["bubble"] / many.step_time_s < \
        few.breakdown_s["bubble"] / few.step_time_s


def test_overrides_reach_the_simulation():
    slow = _sim(**dict(PLANS[0], **{"cluster.device.peak_flops": {"bf16": 100e12}}))
    fast = _sim(**PLANS[0])
    assert slow.step_time_s > fast.step_time_s
    assert slow.device.startswith("A100-SXM4-80GB")


def test_deterministic_json():
    assert _sim(**PLANS[1]).to_json() == _sim(**PLANS[1]).to_json()


def test_network_link_efficiency_slows_only_network_bound_time():
    """A link class's ``efficiency`` scales the bandwidth the collectives get: halving the
    NIC's slows a DP-heavy plan's exposed communication and leaves compute alone."""
    over = {"plan.tp": 1, "plan.pp": 1, "plan.dp": 16, "cluster.nodes": 2,
            "training.global_batch": 64, "plan.dp_overlap": False,
            "plan.overlap_param_gather": False}
    base = api.simulate("gpt2", "dgx-a100", **over)
    slow = api.simulate("gpt2", "dgx-a100", **over,
                    **{"cluster.inter.link": {"base": "IB-HDR", "efficiency": 0.5}})
    assert slow.breakdown_s["compute"] == base.breakdown_s["compute"]
    assert slow.breakdown_s["dp_comm"] > 1.5 * base.breakdown_s["dp_comm"]


def test_simwall_sweep_is_the_function_every_time(tiny):
    """``simwall.sweep`` stays the function on every access, also once the sweeps module is
    imported (in the old layout ``import simwall.sweep`` rebound it to the module, so a
    second ``simwall.sweep(...)`` raised TypeError)."""
    import simwall

    base, grid = {"workload": tiny, "cluster": "single-node"}, {"plan.tp": [1, 2]}
    first = list(simwall.sweep(base, grid))
    second = list(simwall.sweep(base, grid))
    import simwall.studies.sweeps  # must not rebind simwall.sweep
    third = list(simwall.sweep(base, grid))
    assert callable(simwall.sweep) and simwall.sweep is simwall.studies.sweeps.sweep
    assert [r["sweep.index"] for r in first] == [0, 1]
    assert not any(r["error"] for r in first)
    assert first == second == third


def test_clear_caches_is_public():
    import simwall
    from simwall import memo

    assert "clear_caches" in simwall.__all__
    assert simwall.clear_caches is memo.clear_caches
    simwall.clear_caches()
    assert _sim(**PLANS[0]).step_time_s > 0  # a run after clearing works


@pytest.mark.parametrize("zero", [0, 1, 2, 3])
def test_trace_covers_the_whole_step(zero):
    """The processes write the trace as they run, through the optimizer step and the ZeRO
    1/2 parameter all-gather: the last event ends at the step time."""
    over = dict(PLANS[0], **{"plan.zero": zero})
    for per_device in (False, True):
        r = api.simulate("gpt3-175b", "dgx-a100", per_device=per_device, trace=True,
                         **dict(SMALL, **over))
        spans = [e for e in r.trace_events if e["ph"] == "X"]
        last_end_s = max((e["ts"] + e["dur"]) / 1e6 for e in spans)
        assert last_end_s == pytest.approx(r.step_time_s, rel=1e-9)
        assert {e["cat"] for e in spans} >= {"compute", "dp", "optimizer"}


GPT3_131K = {"cluster.nodes": 16384, "training.global_batch": 2048 * 64}


def test_engine_task_cap_counts_the_simulated_streams():
    """GPT-3 175B on 131,072 GPUs (tp 8 x pp 8 x dp 2048), 64 micro-batches per replica:
    a symmetric run simulates the 8 pipeline streams only (1,024 tasks) and runs; per
    device it would simulate all 2,048 replicas (2,097,152 tasks) and is refused with an
    error located in the workload."""
    r = api.simulate("gpt3-175b", **GPT3_131K)
    assert r.world == 131072 and r.plan["dp"] == 2048
    assert r.engine["mode"] == "symmetric" and r.engine["streams"] == 8
    prep = api.prepare("gpt3-175b", None, GPT3_131K)
    assert prep.plan.micro_batches == 64
    with pytest.raises(ConfigError) as err:
        api.run_prepared(prep, per_device=True)   # refused before anything is simulated
    assert err.value.source == prep.workload.file
    assert err.value.key == "training.global_batch"
    assert err.value.line == prep.workload.line("training.global_batch")
    assert "64 micro-batches per replica x 8 model chunks x 2 passes x 2048 replicas = " \
        "2,097,152 engine tasks" in err.value.message
    with pytest.raises(ConfigError, match="2,097,152 engine tasks"):
        api.simulate("gpt3-175b", per_device=True, **GPT3_131K)


def test_results_print_short_and_the_package_lists_its_names():
    from simwall.studies.check import check
    from simwall.studies.search import search

    r = api.simulate("gpt2", "single-node")
    assert repr(r).startswith("StepResult(gpt2 on single-node, 8 x A100-SXM4-80GB")
    assert f"step {r.step_time_s:.4f} s" in repr(r) and len(repr(r)) < 200
    s = search("gpt2", "single-node", top=2)
    assert repr(s).startswith("SearchResult(gpt2 on single-node:") and len(repr(s)) < 300
    assert repr(check("gpt2", "single-node")).startswith("CheckResult(fits: plan: ")
    import simwall
    assert {"simulate", "sweep", "StepResult", "read_records"} <= set(dir(simwall))


def test_switches_are_booleans():
    with pytest.raises(ConfigError, match="per_device: expected True or False, got 'yes'"):
        api.simulate("gpt2", "single-node", per_device="yes")
