"""Expert parallelism's token exchange moves the tokens a rank holds: with context
parallelism that is seq_len / cp of every sequence (Megatron-Core's dispatcher routes the
rank's local hidden states), the count the experts' GEMMs run on."""

from __future__ import annotations

import pytest

from simwall.api import prepare
from simwall.costing.ep import ep_cost
from simwall.model import ops as W


def _exchange(cp: int):
    prep = prepare("mixtral-8x7b", None, {
        "plan.cp": cp, "plan.tp": 2, "plan.sequence_parallel": True, "plan.pp": 1,
        "plan.ep": 8, "plan.dp": 32 // cp, "cluster.nodes": 8})
    model, training, plan = prep.workload.model, prep.workload.training, prep.plan
    cost = ep_cost(model, training, plan, prep.topology, 0, True)
    return model, training, plan, {t.kind: t.bytes_ for t in cost.traffic}


@pytest.mark.parametrize("cp", [1, 2, 4])
def test_all_to_all_moves_the_ranks_own_tokens(cp):
    model, training, plan, sent = _exchange(cp)
    own = plan.micro_batch * model.seq_len // cp // plan.tp       # SP shard of the CP chunk
    assert sent["all_to_all"] == own * model.top_k * model.hidden * 2      # bf16
    # The TP all-gather carries what this rank's experts compute on: the routed tokens
    # the ops of the MoE layer give its expert GEMMs (up projection: m x count).
    up = next(op for op in W.layer_ops(model, training, plan, "fwd", moe=True)
              if op.name == "mlp_up")
    m, _, _ = up.gemm
    experts_here = model.experts // plan.ep
    assert sent["all_gather"] == m * experts_here * model.hidden * 2


def test_context_parallelism_halves_the_exchange():
    one, two = _exchange(1)[3], _exchange(2)[3]
    for kind in one:
        assert two[kind] == pytest.approx(one[kind] / 2)
