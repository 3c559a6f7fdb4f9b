"""model.moe_node_limit: node-limited routing (DeepSeek-V3, Sec. 3.2.2). A token crosses the
network once per node its experts are on (at most the limit) and fans out over NVLink
there; the two all-to-alls overlap, so the exchange takes the longer."""

from __future__ import annotations

import pytest

from simwall import simulate
from simwall.api import prepare
from simwall.costing.ep import ep_cost, ep_groups
from simwall.costing.traffic import run_collective
from simwall.errors import ConfigError
from simwall.model.ops import activation_element_bytes

# DeepSeek-V3 cut to 8 layers on 16 H800 nodes: EP 16 spans 2 nodes.
CUT = {"model.layers": 8, "model.dense_layers": 1, "cluster.nodes": 16, "plan.pp": 2,
       "plan.ep": 16, "training.global_batch": 256}


def _ep(**over):
    p = prepare("deepseek-v3", None, {**CUT, **over})
    wl = p.workload
    return p, ep_cost(wl.model, wl.training, p.plan, p.topology, 1, symmetric=False)


def test_dispatch_crosses_nodes_once_per_node_then_fans_out_by_hand():
    p, cost = _ep(**{"model.moe_node_limit": 2})
    wl, plan, topo = p.workload, p.plan, p.topology
    model = wl.model
    per_node = topo.devices_per_node
    groups = ep_groups(plan, 1, topo, symmetric=False)
    local = [tuple(d for d in g if d // per_node == n) for g in groups
             for n in sorted({d // per_node for d in g})]
    across = [tuple(b[i] for b in (g[:per_node], g[per_node:])) for g in groups
              for i in range(per_node)]
    tokens = plan.micro_batch * model.seq_len            # TP 1, CP 1: the rank's own
    h_bytes = tokens * model.hidden * activation_element_bytes(wl.training)
    count = cost.traffic[0].count
    inter = run_collective(topo, "all_to_all", across, h_bytes * 2, count, plan.collective,
                           False)
    intra = run_collective(topo, "all_to_all", local, h_bytes * model.top_k, count,
                           plan.collective, False)
    assert [t.kind for t in cost.traffic] == ["all_to_all", "all_to_all"]
    assert cost.layer_fwd_s == pytest.approx(2 * max(inter.s, intra.s), rel=1e-12)


def test_fewer_nodes_per_token_never_slower():
    times = [_ep(**{"model.moe_node_limit": n})[1].layer_fwd_s for n in (1, 2)]
    unlimited = _ep(**{"model.moe_node_limit": None})[1].layer_fwd_s
    assert times[0] <= times[1] < unlimited


def test_an_expert_group_inside_one_node_is_unchanged():
    base = simulate("mixtral-8x7b")                          # EP 8 inside a node
    limited = simulate("mixtral-8x7b", **{"model.moe_node_limit": 1})
    assert limited.step_time_s == base.step_time_s


def test_deepseek_v3_routes_to_at_most_four_nodes():
    assert prepare("deepseek-v3", None, {}).workload.model.moe_node_limit == 4


def test_the_limit_needs_experts():
    with pytest.raises(ConfigError, match="model.moe_node_limit: needs model.experts"):
        prepare("llama2-7b", None, {"model.moe_node_limit": 4})
