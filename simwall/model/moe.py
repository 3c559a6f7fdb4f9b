"""Mixture-of-experts layers: which layers route tokens, how many tokens a device's
experts process and how many parameters it holds (pure).

An MoE layer replaces the dense MLP by a router (a ``h x experts`` GEMM and a top-k) and
``experts`` MLPs of width ``moe_ffn``; each token runs through ``top_k`` of them, plus the
``shared_experts`` every token passes (Shazeer et al. 2017, "Outrageously Large Neural
Networks"; GShard, Lepikhin et al. 2021; DeepSeekMoE, Dai et al. 2024, Sec. 3).
Expert parallelism (``plan.ep``) splits the routed experts over ``ep`` ranks carved out of
the data-parallel ranks; each rank sends its tokens to the experts' ranks and gets the
results back (two all-to-alls per pass, :mod:`simwall.costing.ep`). The experts keep the
dense MLP's TP split (Megatron-Core's default expert TP = TP).
"""

from __future__ import annotations

import math

from ..config import ModelSpec
from ..plan import Plan

__all__ = [
    "chunk_moe_layers",
    "expert_params",
    "is_moe_layer",
    "load_factor",
    "mlp_params",
    "moe_layer_count",
    "routed_tokens",
    "shared_mlp_params",
]


def is_moe_layer(model: ModelSpec, index: int) -> bool:
    """Whether layer ``index`` (0-based) routes its tokens to experts: the layers from
    ``dense_layers`` on, every ``moe_layer_freq``-th (Megatron-Core --moe-layer-freq;
    DeepSeek-V3's first three layers are dense, DeepSeek-AI 2024, Sec. 4.2)."""
    if not model.moe or index < model.dense_layers:
        return False
    return (index - model.dense_layers) % model.moe_layer_freq == 0


def moe_layer_count(model: ModelSpec, first: int, count: int) -> int:
    """MoE layers among layers ``first .. first + count - 1``."""
    return sum(is_moe_layer(model, i) for i in range(first, first + count))


def chunk_moe_layers(model: ModelSpec, plan: Plan, chunk: int) -> int:
    """MoE layers of model chunk ``chunk`` (chunks hold consecutive layers in model
    order, ``plan.stage_layers``)."""
    first = sum(plan.stage_layers[:chunk])
    return moe_layer_count(model, first, plan.stage_layers[chunk])


def load_factor(model: ModelSpec) -> float:
    """Routed tokens of the busiest device over the mean: ``moe_imbalance``, never above
    the capacity factor (an expert drops tokens beyond its capacity; Fedus et al. 2022,
    Switch Transformers, Sec. 2.2)."""
    if model.capacity_factor is None:
        return model.moe_imbalance
    return min(model.moe_imbalance, model.capacity_factor)


def routed_tokens(model: ModelSpec, tokens: int) -> int:
    """Token-expert assignments one expert-parallel rank computes for ``tokens`` tokens
    of its own: ``top_k`` per token, spread evenly over the ranks (each rank receives on
    average what it sends), times :func:`load_factor`, rounded up."""
    return math.ceil(tokens * model.top_k * load_factor(model))


def mlp_params(model: ModelSpec, width: int, tp: int) -> int:
    """One MLP of ``width`` split over ``tp``: up (and gate) and down weights, with the
    column-parallel biases split and the down bias replicated when the model has biases
    (as :func:`simwall.model.memory.layer_params` counts the dense MLP)."""
    ups = 2 if model.gated_mlp else 1
    f_dev = width // tp
    weights = (ups + 1) * model.hidden * f_dev
    biases = ups * f_dev + model.hidden if model.norm == "layernorm" else 0
    return weights + biases


def expert_params(model: ModelSpec, tp: int = 1, ep: int = 1) -> int:
    """Parameters of the routed experts of one MoE layer held by one device: ``experts /
    ep`` expert MLPs, each split over ``tp``."""
    if not model.moe:
        return 0
    return model.experts // ep * mlp_params(model, model.moe_ffn, tp)


def shared_mlp_params(model: ModelSpec, tp: int = 1) -> int:
    """Parameters of one MoE layer held by every device whatever ``ep``: the router
    (``h x experts``, replicated over TP as Megatron-Core's TopKRouter keeps it) and the
    shared experts (one MLP of ``shared_experts x moe_ffn`` width, split over TP)."""
    if not model.moe:
        return 0
    shared = (mlp_params(model, model.shared_experts * model.moe_ffn, tp)
              if model.shared_experts else 0)
    return model.hidden * model.experts + shared
