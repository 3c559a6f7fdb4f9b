"""Tests of simwall.costing's concern modules: groups, traffic records, buckets, and the
stage cost as the composition of its parts (tp, zero, pp, dp, optimizer)."""

from __future__ import annotations

import ast
import pathlib

import pytest

from simwall import api, costing
from simwall.config import load_cluster
from simwall.costing import buckets, stage_cost
from simwall.costing.dp import bucket_cost, tied_embedding_cost
from simwall.costing.groups import dp_groups, stage_pairs, tp_groups
from simwall.costing.optimizer import parameter_gather_cost
from simwall.costing.pp import pp_cost
from simwall.costing.tp import tp_cost
from simwall.costing.traffic import Costed, run_collective
from simwall.costing.zero import zero3_cost
from simwall.net import build_topology

N_BYTES = 1e9


@pytest.fixture(scope="module")
def node():
    return build_topology(load_cluster("single-node"))


def test_buckets_cut_the_gradients_in_order():
    assert buckets(100.0, 25.0) == (25.0, 25.0, 25.0, 25.0)
    assert buckets(60.0, 25.0) == (25.0, 25.0, 10.0)
    assert buckets(0.0, 25.0) == ()


def test_run_collective_records_what_the_step_runs(node):
    ring = ((0, 1, 2, 3),)
    once = run_collective(node, "all_reduce", ring, N_BYTES, 3, "ring", False)
    assert once.s > 0
    (record,) = once.traffic
    assert (record.kind, record.groups, record.bytes_, record.algorithm, record.count) == (
        "all_reduce", ring, N_BYTES, "ring", 3.0)
    # Costed but not run by the step: the same seconds, no record.
    idle = run_collective(node, "all_reduce", ring, N_BYTES, 0, "ring", False)
    assert idle == Costed(once.s, ())
    # Nothing to run: no bytes, no groups, or groups of one device.
    for groups, bytes_ in ((ring, 0.0), ((), N_BYTES), (((0,), (1,)), N_BYTES)):
        assert run_collective(node, "all_reduce", groups, bytes_, 3, "ring", False) == Costed()


def test_groups_cover_the_stage_once():
    plan = api.prepare("bert-large", "dgx-a100", {"cluster.nodes": 2, "plan.pp": 2,
                                            "plan.tp": 2}).plan
    for stage in range(plan.pp):
        tp = [d for g in tp_groups(plan, stage) for d in g]
        dp = [d for g in dp_groups(plan, stage) for d in g]
        assert sorted(tp) == sorted(dp) and len(set(tp)) == plan.tp * plan.dp
    pairs = stage_pairs(plan, 0, 1, plan.tp)
    assert all(plan.rank_of(a)[1:] == plan.rank_of(b)[1:] for a, b in pairs)


@pytest.mark.parametrize("over", [
    {"plan.zero": 1, "plan.sequence_parallel": True},
    {"plan.zero": 3, "plan.recompute": "full"},
    {"plan.zero": 0, "plan.pp_scatter_gather": True},
])
@pytest.mark.parametrize("symmetric", [True, False])
def test_stage_traffic_is_the_parts_in_order(over, symmetric):
    prep = api.prepare("bert-large", "dgx-a100", {"cluster.nodes": 2, "plan.pp": 2, "plan.tp": 2,
                                            **over})
    model, training, plan = prep.workload.model, prep.workload.training, prep.plan
    topo = prep.topology
    for stage in range(plan.pp):
        sc = stage_cost(model, training, plan, prep.device, topo, stage, 1.0, symmetric)
        args = (model, training, plan, topo, stage, symmetric)
        tp, z3, pp = tp_cost(*args), zero3_cost(*args), pp_cost(*args)
        grads = bucket_cost(plan, topo, stage, sum(c.grad_bytes for c in sc.chunks), symmetric)
        tied, post = tied_embedding_cost(*args), parameter_gather_cost(*args)
        assert sc.traffic == (tp.traffic + z3.traffic + pp.traffic + grads.traffic
                              + tied.traffic + post.traffic)
        assert (sc.pp_fwd_s, sc.pp_bwd_s) == (pp.fwd_s, pp.bwd_s)
        assert (sc.bucket_bytes, sc.bucket_s) == (grads.bucket_bytes, grads.bucket_s)
        assert sc.tied_embedding_s == tied.s
        # The parameter all-gather: its exposed part plus the part hidden under the next
        # forward (plan.overlap_param_gather) is the whole collective.
        assert sc.post_optimizer_s + sc.param_gather_hidden_s == pytest.approx(post.s)
        assert sc.post_optimizer_s <= post.s
        assert sc.traffic, "a TP x PP x DP plan runs collectives"


_ABOVE_COSTING = ("report", "engine", "api", "studies", "cli")


@pytest.mark.parametrize("path", sorted(pathlib.Path(costing.__file__).parent.glob("*.py")),
                         ids=lambda p: p.name)
def test_costing_is_pure_and_below_the_engine(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            assert not any(a.name.split(".")[0] == "simpy" for a in n.names), path.name
        elif isinstance(n, ast.ImportFrom):
            module = n.module or ""
            assert "simpy" not in module, path.name
            if n.level >= 2:
                assert module.split(".")[0] not in _ABOVE_COSTING, (path.name, module)
            # Nothing private crosses a module boundary.
            assert not any(a.name.startswith("_") for a in n.names), (path.name, module)
