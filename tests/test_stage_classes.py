"""A stage that shares its class (first, last, layers per chunk) with an earlier stage takes
that stage's costs on a symmetric run (costing.stage.stage_cost): every stage must equal
its own costing, field by field, bit for bit."""

from __future__ import annotations

import pytest

from simwall import clear_caches
from simwall.api import prepare
from simwall.costing import costs_symmetrically, stage_cost
from simwall.costing.stage import _stage_cost
from simwall.plan import stage_classes


@pytest.mark.parametrize("workload, cluster, over", [
    ("gpt3-175b", "dgx-a100", {"plan.tp": 8, "plan.pp": 16, "cluster.nodes": 128}),
    ("gpt3-175b", "dgx-a100", {"plan.tp": 8, "plan.pp": 8, "cluster.nodes": 64,
                               "plan.schedule": "interleaved", "plan.virtual_stages": 3,
                               "plan.zero": 2, "plan.zero_grad_reduce": "micro_batch"}),
    ("gpt3-175b", "dgx-a100", {"plan.tp": 4, "plan.pp": 8, "cluster.nodes": 64,
                               "plan.zero": 3, "plan.schedule": "zero_bubble",
                               "plan.sequence_parallel": False}),
    ("bert-large", "dgx-a100", {"plan.tp": 4, "plan.pp": 4, "cluster.nodes": 4,
                                "plan.stage_layers": [4, 8, 8, 4]}),
    ("gpt2", "dgx-a100", {"plan.tp": 1, "plan.pp": 4, "cluster.nodes": 4, "plan.cp": 2,
                          "plan.recompute": "full", "plan.schedule": "gpipe"}),
    ("llama2-7b", "dgx-a100", {"plan.tp": 8, "plan.pp": 4, "cluster.nodes": 4,
                               "plan.schedule": "interleaved", "plan.virtual_stages": 2}),
])
def test_every_stage_equals_its_own_costing(workload, cluster, over):
    clear_caches()
    prep = prepare(workload, cluster, over)
    wl, plan = prep.workload, prep.plan
    assert costs_symmetrically(prep.cluster, prep.topology, plan)
    classes = stage_classes(plan.stage_layers, plan.pp, plan.virtual_stages)
    assert any(first != s for s, first in enumerate(classes))   # some stage is shared
    for s in range(plan.pp):
        shared = stage_cost(wl.model, wl.training, plan, prep.device, prep.topology, s,
                            symmetric=True)
        own = _stage_cost(wl.model, wl.training, plan, prep.device, prep.topology, s, 1.0,
                          True)
        assert shared == own                       # dataclass equality: every float exact
        assert shared.stage == s
        assert [c.chunk for c in shared.chunks] == [
            local * plan.pp + s for local in range(plan.virtual_stages)]


def test_classes_split_by_role_and_layers():
    # pp 4: first, middle (same layers), last; an uneven split breaks the middle class.
    assert stage_classes((3, 3, 3, 3), 4, 1) == (0, 1, 1, 3)
    assert stage_classes((3, 4, 2, 3), 4, 1) == (0, 1, 2, 3)
    assert stage_classes((2, 2, 2, 2, 2, 1), 3, 2) == (0, 1, 2)
    assert stage_classes((5,), 1, 1) == (0,)
