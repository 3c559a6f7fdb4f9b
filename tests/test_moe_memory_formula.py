"""The expert memory model against Megatron-Core's published formula.

Megatron-LM's theoretical memory estimator, megatron/training/theoretical_memory_usage.py
(NVIDIA/Megatron-LM, ``compute_weight_and_optimizer_memory``; file as of commit 1bcb3b9e0b,
June 2026), gives the bytes of weights, gradients and optimizer state on the most loaded
device (pipeline stage 0) of a bf16 run with Adam:

- parameters are split three ways: TP-sharded (attention, dense MLP, shared experts, the
  input embedding; divided by TP), replicated (the norms, the router, the final norm) and
  expert-sharded (the routed experts; divided by expert-TP x EP); each is divided by PP
  (the layers split evenly over the stages) and stage 0 holds the embedding (and the
  untied output layer too when PP is 1);
- bytes per parameter: 18 without the distributed optimizer (bf16 weights 2, fp32 main
  gradients 4, fp32 master weights + Adam moments 12), 6 + 12 / d with it, where d is the
  data-parallel size for the non-expert parameters and the expert-data-parallel size
  world / (expert-TP x EP x PP) for the routed experts.

The function below restates that formula from the model's hyperparameters alone (nothing
from simwall's own parameter counts); simwall's ``device_memory`` for stage 0 must agree,
parameters + gradients + optimizer state, for Mixtral-, Grok- and DeepSeek-V3-shaped
models under TP, PP, EP and expert DP. The formula's simplifications are kept out of the
configurations instead of being matched: vocabularies are multiples of 128 x TP (no
padding), models have no linear biases (RMSNorm; the formula counts none), layers split
evenly with the same mix of dense and MoE layers on every stage, and the multi-latent
attention case runs TP 1 (simwall keeps MLA's down-projections whole on every TP rank, the
formula divides them by TP). The one difference left is accounted for exactly: the formula
spreads the final norm over the stages (``hidden / pp`` parameters on each), simwall keeps
it on the last.
"""

from __future__ import annotations

import pytest

from simwall.config import ModelSpec, TrainingSpec
from simwall.config.schema import MLASpec
from simwall.model import memory as M
from simwall.plan import Plan


def megatron_weight_and_optimizer_bytes(*, layers: int, hidden: int, heads: int,
                                        kv_heads: int, ffn: int, vocab: int, experts: int,
                                        moe_ffn: int, shared_ffn: int, moe_layers: int,
                                        tied: bool, tp: int, pp: int, ep: int, dp: int,
                                        distributed_optimizer: bool,
                                        mla: MLASpec | None = None,
                                        expert_dp: int | None = None) -> float:
    """Megatron-LM ``compute_weight_and_optimizer_memory`` (see the module docstring) for
    a gated-MLP (SwiGLU), RMSNorm, bias-free model with expert-TP = TP and no CP.
    ``expert_dp``: replaces the formula's expert-data-parallel size (only to show that the
    check tells the two groups apart)."""
    gated = 3 / 2
    norm = 1                                      # RMSNorm: a gain, no bias
    if mla is None:
        head_dim = hidden // heads
        attention = 2 * hidden * hidden * (1 + kv_heads / heads) * (heads * head_dim / hidden)
    else:
        q_term = mla.q_lora_rank * (hidden + heads * (mla.qk_nope_head_dim
                                                      + mla.qk_rope_head_dim) + norm)
        attention = (q_term
                     + mla.kv_lora_rank * (hidden + heads * (mla.qk_nope_head_dim
                                                             + mla.v_head_dim) + norm)
                     + hidden * mla.qk_rope_head_dim
                     + heads * mla.v_head_dim * hidden)
    dense_layers = layers - moe_layers
    embedding = hidden * vocab
    dense_mlp = 2 * hidden * ffn * gated
    shared = 2 * hidden * shared_ffn * gated
    routed = 2 * hidden * moe_ffn * experts * gated
    norms = 2 * hidden * norm
    router = hidden * experts
    tp_sharded = (attention + dense_mlp) * dense_layers + (attention + shared) * moe_layers
    replicated = norms * dense_layers + (norms + router) * moe_layers + norm * hidden
    expert_sharded = routed * moe_layers
    world = tp * pp * dp
    if expert_dp is None:
        expert_dp = world // (tp * ep * pp)
    dense_on_shard = (tp_sharded / pp + embedding) / tp + replicated / pp
    if not tied and pp == 1:
        dense_on_shard += embedding / tp
    experts_on_shard = expert_sharded / pp / (tp * ep)

    def per_param(d: int) -> float:
        return 6 + 12 / d if distributed_optimizer else 18

    return dense_on_shard * per_param(dp) + experts_on_shard * per_param(expert_dp)


def _simwall_bytes(model: ModelSpec, tp: int, pp: int, ep: int, dp: int, zero: int) -> float:
    plan = Plan(tp=tp, pp=pp, dp=dp, virtual_stages=1, sequence_parallel=tp > 1, zero=zero,
                recompute="none", schedule="1f1b", micro_batch=1, global_batch=dp,
                stage_layers=(model.layers // pp,) * pp, ep=ep)
    training = TrainingSpec(global_batch=dp, precision="bf16", optimizer="adam",
                            mixed_precision="megatron")
    stage0 = M.device_memory(model, training, plan)[0]
    return stage0.params_bytes + stage0.grads_bytes + stage0.optimizer_bytes


# Mixtral 8x7B (Jiang et al. 2024, Table 1), Grok 1 as NVIDIA dgxc-benchmarking's
# grok1_314b.yaml gives it (Llama 3 vocabulary), DeepSeek-V3 (DeepSeek-AI 2024, Sec. 4.2;
# 61 layers cut to 8 with its 3 dense layers kept, vocabulary 129280).
MIXTRAL = ModelSpec(layers=32, hidden=4096, heads=32, kv_heads=8, ffn_hidden=14336,
                    vocab=32000, seq_len=4096, gated_mlp=True, norm="rmsnorm",
                    tied_embeddings=False, experts=8, top_k=2)
GROK1 = ModelSpec(layers=64, hidden=6144, heads=48, kv_heads=8, ffn_hidden=32768,
                  vocab=128256, seq_len=8192, gated_mlp=True, norm="rmsnorm",
                  tied_embeddings=False, experts=8, top_k=2)
DSV3_MLA = MLASpec(q_lora_rank=1536, kv_lora_rank=512, qk_nope_head_dim=128,
                   qk_rope_head_dim=64, v_head_dim=128)
DEEPSEEK_V3_8L = ModelSpec(layers=8, hidden=7168, heads=128, ffn_hidden=18432, vocab=129280,
                           seq_len=4096, gated_mlp=True, norm="rmsnorm",
                           tied_embeddings=False, mla=DSV3_MLA, experts=256, top_k=8,
                           moe_ffn_hidden=2048, shared_experts=1, dense_layers=3)

CASES = [
    # (model, tp, pp, ep, dp)
    (MIXTRAL, 1, 1, 8, 8),
    (MIXTRAL, 2, 4, 8, 16),       # expert DP 2
    (MIXTRAL, 4, 2, 2, 8),        # 4 experts per device, expert DP 4
    (GROK1, 4, 8, 8, 8),          # dgxc-benchmarking's 512-GPU plan without CP
    (GROK1, 4, 8, 8, 32),         # ... and its 2048-GPU DP
    (DEEPSEEK_V3_8L, 1, 1, 64, 64),
    (DEEPSEEK_V3_8L, 1, 1, 8, 32),
]


@pytest.mark.parametrize("zero", [0, 1])
@pytest.mark.parametrize(("model", "tp", "pp", "ep", "dp"), CASES)
def test_expert_model_states_match_megatron_formula(model, tp, pp, ep, dp, zero):
    moe_layers = model.layers - model.dense_layers
    expect = megatron_weight_and_optimizer_bytes(
        layers=model.layers, hidden=model.hidden, heads=model.heads,
        kv_heads=model.kv_heads or model.heads, ffn=model.ffn, vocab=model.vocab,
        experts=model.experts, moe_ffn=model.moe_ffn,
        shared_ffn=model.shared_experts * model.moe_ffn, moe_layers=moe_layers,
        tied=model.tied_embeddings, tp=tp, pp=pp, ep=ep, dp=dp,
        distributed_optimizer=zero == 1, mla=model.mla)
    got = _simwall_bytes(model, tp, pp, ep, dp, zero)
    # The one term the two place differently: the formula spreads the final norm (hidden
    # parameters) over the PP stages, simwall keeps it on the last stage.
    if pp > 1:
        expect -= model.hidden / pp * ((6 + 12 / dp) if zero else 18)
    assert got == pytest.approx(expect, rel=1e-9)


def test_the_check_tells_expert_dp_from_dp():
    """The comparison can fail: had simwall sharded the experts' optimizer state over all
    DP ranks instead of the expert-DP group (dp / ep), it would be off by far more than
    the tolerance above."""
    model, tp, pp, ep, dp = MIXTRAL, 2, 4, 8, 16
    kwargs = {"layers": model.layers, "hidden": model.hidden, "heads": model.heads,
              "kv_heads": 8, "ffn": model.ffn, "vocab": model.vocab, "experts": 8,
              "moe_ffn": model.moe_ffn, "shared_ffn": 0, "moe_layers": model.layers,
              "tied": False, "tp": tp, "pp": pp, "ep": ep, "dp": dp,
              "distributed_optimizer": True}
    right = megatron_weight_and_optimizer_bytes(**kwargs)
    wrong = megatron_weight_and_optimizer_bytes(**kwargs, expert_dp=dp)
    final_norm = model.hidden / pp * (6 + 12 / dp)
    assert _simwall_bytes(model, tp, pp, ep, dp, zero=1) == pytest.approx(right - final_norm,
                                                                           rel=1e-9)
    assert wrong < right * (1 - 1e-2)
