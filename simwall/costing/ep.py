"""Expert parallelism: the token exchange of an MoE layer (pure).

Megatron-Core's all-to-all token dispatcher (megatron/core/transformer/moe/
token_dispatcher.py, ``MoEAlltoAllTokenDispatcher``): each rank routes the tokens of its
sequence-parallel shard, sends each token to the ranks of its ``top_k`` experts (an
all-to-all over the EP group), and, with TP, all-gathers the received tokens over the TP
group so every TP rank runs its slice of the local experts on all of them; the combine
runs the same in reverse (reduce-scatter over TP, all-to-all back). The backward moves the
gradients the same way; full recompute repeats the forward's exchange. A rank routes its
own tokens: the micro-batch's ``seq_len / cp`` with context parallelism, split over TP with
SP. EP groups are ``ep`` consecutive ranks of the DP x CP group (devices ``tp`` apart):
Megatron-Core's expert rank generator since core_r0.10.0 (megatron/core/parallel_state.py,
``expert_decoder_rank_generator`` with ``cp=1``: CP ranks fold into EP and expert DP); with
``cp = 1`` this is also core_r0.9.0's order tp-cp-ep-dp-pp, which with CP > 1 strided EP
over ``tp x cp`` devices instead (its groups span twice the nodes at CP 2; not modelled).
The exchange is exposed by default (Megatron-Core's default). ``plan.ep_overlap`` is
Megatron-Core's ``--overlap-moe-expert-parallel-comm``: its combined 1F1B schedule runs one
micro-batch's forward beside another's backward, layer by layer on two streams, so "EP
A2A in forward step is hidden by the attention/mlp computation in the backward step, and
vice versa" (megatron/core/pipeline_parallel/combined_1f1b.py); :func:`ep_exposed_s` costs
each pass's exchange beside the other pass's compute (:func:`.contention.beside_s`), and
the schedule runs one more warm-up forward (``Plan.extra_warmup``). The model pairs every pass
that way, also the warm-up and cool-down ones that run alone, so it is optimistic by up
to their share of the step (about ``pp / m``). DeepSeek's DualPipe hides the exchange in
a similar way.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import ModelSpec, TrainingSpec
from ..model.moe import chunk_moe_layers, routed_tokens
from ..model.ops import activation_element_bytes
from ..plan import Plan
from .contention import beside_s
from .groups import Groups, axis_groups, blocks, dp_groups, near_groups
from .traffic import Costed, Traffic, run_collective

__all__ = ["EPCost", "ep_cost", "ep_exposed_s", "ep_groups"]


@dataclass(frozen=True)
class EPCost:
    """Seconds of one MoE layer's token exchange per micro-batch (``layer_fwd_s``: dispatch
    and combine; ``layer_bwd_s``: their gradients, plus the forward's again under full
    recompute), the TP part included; with the step's traffic."""

    layer_fwd_s: float = 0.0
    layer_bwd_s: float = 0.0
    traffic: tuple[Traffic, ...] = ()


def ep_groups(plan: Plan, stage: int, topology, symmetric: bool) -> Groups:
    """The EP groups of ``stage`` to cost: every block of ``ep`` consecutive DP ranks of
    every DP group, or, ``symmetric``, those sharing a node with the first block."""
    if plan.ep < 2:
        return []
    if not symmetric:
        return [tuple(b) for b in blocks(dp_groups(plan, stage), plan.ep)]
    near = blocks(near_groups(plan, 0, "dp", topology), plan.ep)
    per_node = topology.devices_per_node
    nodes = {d // per_node for d in near[0]}
    return [b for b in near if nodes & {d // per_node for d in b}]


def ep_cost(model: ModelSpec, training: TrainingSpec, plan: Plan, topology, stage: int,
            symmetric: bool) -> EPCost:
    """Token exchange of one MoE layer of ``stage`` (nothing for a dense model)."""
    if not model.moe:
        return EPCost()
    n_moe = sum(chunk_moe_layers(model, plan, c) for c in range(stage, plan.chunks, plan.pp))
    e = activation_element_bytes(training)
    # With context parallelism each rank holds seq_len / cp tokens of every sequence and
    # routes only those (the dispatcher acts on the rank's local hidden states; the same
    # count simwall.model.ops gives the experts' GEMMs).
    tokens = plan.micro_batch * model.seq_len // plan.cp
    own = tokens // (plan.tp if plan.sequence_parallel else 1)
    passes = 4 + (2 if plan.recompute == "full" else 0)     # per layer and micro-batch
    count = plan.micro_batches * n_moe * passes
    # All-to-all buffer per rank (nccl-tests convention: the send buffer): the rank's
    # token-expert assignments.
    groups = ep_groups(plan, stage, topology, symmetric)
    a2a = (_node_limited(model, plan, topology, groups, own * model.hidden * e, count,
                         symmetric) if model.moe_node_limit is not None else None)
    if a2a is None:
        a2a = run_collective(topology, "all_to_all", groups,
                             own * model.top_k * model.hidden * e, count, plan.collective,
                             symmetric)
    gather = scatter = Costed()
    if plan.tp > 1:
        # The stage's TP groups, as costing.tp.tp_cost costs them.
        tp_groups = axis_groups(plan, 0 if symmetric else stage, "tp", topology, symmetric)
        routed_bytes = routed_tokens(model, tokens) * model.hidden * e
        gather = run_collective(topology, "all_gather", tp_groups, routed_bytes,
                                count / 2, plan.collective, symmetric)
        scatter = run_collective(topology, "reduce_scatter", tp_groups, routed_bytes,
                                 count / 2, plan.collective, symmetric)
    one_way = 2 * a2a.s + gather.s + scatter.s          # dispatch + combine
    bwd = one_way + (one_way if plan.recompute == "full" else 0.0)
    return EPCost(layer_fwd_s=one_way, layer_bwd_s=bwd,
                  traffic=a2a.traffic + gather.traffic + scatter.traffic)


def ep_exposed_s(plan: Plan, ep: EPCost, layer_fwd_s: float, layer_bwd_s: float,
                 loss: float) -> tuple[float, float]:
    """(forward, backward) seconds one MoE layer's token exchange (``ep``) adds to its
    pass: all of it, or with ``plan.ep_overlap`` what it takes beyond the compute of the
    other micro-batch's opposite pass of the layer (``layer_bwd_s`` for the forward's
    exchange, ``layer_fwd_s`` for the backward's) or the compute it slows (``loss``)."""
    if not plan.ep_overlap:
        return ep.layer_fwd_s, ep.layer_bwd_s
    return (beside_s(ep.layer_fwd_s, layer_bwd_s, loss),
            beside_s(ep.layer_bwd_s, layer_fwd_s, loss))


def _node_limited(model: ModelSpec, plan: Plan, topology, groups: Groups, token_bytes: float,
                  count: float, symmetric: bool) -> Costed | None:
    """The exchange of node-limited routing (``model.moe_node_limit``; DeepSeek-V3, arXiv
    2412.19437, Sec. 3.2.2): a token "will first be transmitted via IB to the GPUs with the
    same in-node index on its target nodes", once per node it reaches (at most the limit,
    the EP group's nodes and ``top_k``), then "forwarded via NVLink" to the GPUs of its
    experts there; "communications via IB and NVLink are fully overlapped", so the
    exchange takes the longer of the two all-to-alls: across nodes among the ranks of one
    in-node position, the rank's tokens times the nodes they reach, and inside each node,
    its tokens times ``top_k``. ``token_bytes``: the rank's tokens' hidden states. None
    when an EP group sits in one node or its nodes hold unequal shares (then every copy
    goes on its own, :func:`ep_cost`)."""
    per_node = topology.devices_per_node
    local: list[tuple[int, ...]] = []
    across: list[tuple[int, ...]] = []
    nodes = 1
    for g in groups:
        by_node: dict[int, list[int]] = {}
        for d in g:
            by_node.setdefault(d // per_node, []).append(d)
        blocks = list(by_node.values())
        if len(blocks) < 2 or len({len(b) for b in blocks}) > 1:
            return None
        nodes = len(blocks)
        local += [tuple(b) for b in blocks]
        across += [tuple(b[i] for b in blocks) for i in range(len(blocks[0]))]
    copies = min(model.moe_node_limit, nodes, model.top_k)
    inter = run_collective(topology, "all_to_all", across, token_bytes * copies, count,
                           plan.collective, symmetric)
    intra = run_collective(topology, "all_to_all", local, token_bytes * model.top_k, count,
                           plan.collective, symmetric)
    return Costed(s=max(inter.s, intra.s), traffic=inter.traffic + intra.traffic)
