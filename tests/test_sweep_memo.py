"""Costs memoised per micro-batch (simwall.model.ops.per_micro_batch) are shared by sweep
points that differ only in the global batch: a point run after its neighbour must give
the record it gives from cold caches, bit for bit (issue 18)."""

from __future__ import annotations

import json

import pytest

from simwall import clear_caches
from simwall.api import prepare, run_prepared
from simwall.model.ops import hardware_flop_per_step, model_flop_per_step, per_micro_batch
from simwall.report import as_dict

GPT3 = {"plan.tp": 8, "plan.pp": 16, "cluster.nodes": 128}


def _record(global_batch: int, extra: dict | None = None) -> str:
    over = dict(GPT3, **{"training.global_batch": global_batch}, **(extra or {}))
    return json.dumps(as_dict(run_prepared(prepare("gpt3-175b", "dgx-a100", over))),
                      sort_keys=True)


@pytest.mark.parametrize("extra", [None, {"plan.zero": 1, "plan.schedule": "interleaved",
                                          "plan.virtual_stages": 2}])
def test_neighbour_first_gives_the_cold_record(extra):
    clear_caches()
    cold = _record(1536, extra)
    clear_caches()
    _record(2048, extra)             # a neighbouring point warms the shared entries
    assert _record(1536, extra) == cold


def test_per_micro_batch_keys_ignore_only_the_batch():
    a = prepare("gpt3-175b", "dgx-a100", dict(GPT3, **{"training.global_batch": 1536}))
    b = prepare("gpt3-175b", "dgx-a100", dict(GPT3, **{"training.global_batch": 1600}))
    ka = per_micro_batch(a.workload.training, a.plan)
    assert ka == per_micro_batch(b.workload.training, b.plan)
    assert ka[1].micro_batches == 1 and ka[1].tp == a.plan.tp and ka[1].pp == a.plan.pp
    c = prepare("gpt3-175b", "dgx-a100", dict(GPT3, **{"training.micro_batch": 2}))
    assert per_micro_batch(c.workload.training, c.plan) != ka


def test_flop_scale_with_the_batch():
    a = prepare("gpt3-175b", "dgx-a100", dict(GPT3, **{"training.global_batch": 1536}))
    b = prepare("gpt3-175b", "dgx-a100", dict(GPT3, **{"training.global_batch": 3072}))
    m = a.workload.model
    assert model_flop_per_step(m, b.workload.training) == \
        2 * model_flop_per_step(m, a.workload.training)
    assert hardware_flop_per_step(m, b.workload.training, b.plan) == \
        2 * hardware_flop_per_step(m, a.workload.training, a.plan)
