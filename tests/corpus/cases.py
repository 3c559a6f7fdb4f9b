"""The output corpus: command lines whose output must not change when the code is
reshaped (not when the model is changed on purpose: then regenerate with
``python tests/corpus/regen.py`` and say why in the commit).

Each case is ``name -> argv`` for :func:`simwall.cli.main`; its standard output is kept
byte for byte in ``expected/NAME.out``.
"""

from __future__ import annotations

_WORKLOADS = ("bert-base", "bert-large", "gpt2", "gpt3-175b", "llama2-70b", "llama2-7b",
              "llama3-405b", "llama3-70b", "llama3-8b", "megatron-1t")

CASES: dict[str, list[str]] = {
    # Every bundled workload on its default cluster.
    **{f"run-{w}": ["run", w, "--format", "json"] for w in _WORKLOADS},
    # Varied plans: ZeRO 0-3, recompute levels, schedules, offload, stragglers, faults,
    # per-device, other clusters and collectives.
    "zero0-none": ["run", "llama2-7b", "--cluster", "dgx-a100", "--set", "cluster.nodes=4",
                   "--set", "plan.zero=0", "--set", "plan.recompute=none",
                   "--format", "json"],
    "zero1-selective": ["run", "llama2-7b", "--set", "cluster.nodes=4", "--set", "plan.zero=1",
                        "--set", "plan.recompute=selective", "--format", "json"],
    "zero2-full-gpipe": ["run", "gpt2", "--cluster", "dgx-a100", "--set", "cluster.nodes=2", "--set", "plan.pp=2",
                         "--set", "plan.zero=2", "--set", "plan.recompute=full",
                         "--set", "plan.schedule=gpipe", "--format", "json"],
    "zero3-sp": ["run", "llama2-70b", "--set", "cluster.nodes=8", "--set", "plan.zero=3",
                 "--set", "plan.pp=1", "--set", "plan.tp=8",
                 "--set", "plan.sequence_parallel=true", "--format", "json"],
    "interleaved": ["run", "examples/megatron-145b.yaml", "--set", "plan.schedule=interleaved",
                    "--set", "plan.virtual_stages=2", "--format", "json"],
    "offload-optimizer": ["run", "llama2-7b", "--set", "cluster.nodes=1",
                          "--set", "plan.offload=optimizer", "--set", "plan.zero=2",
                          "--format", "json"],
    "offload-params": ["run", "llama2-7b", "--set", "cluster.nodes=1",
                       "--set", "plan.offload=optimizer+params", "--set", "plan.zero=3",
                       "--format", "json"],
    "stragglers": ["run", "gpt2", "--cluster", "dgx-a100", "--set", "cluster.nodes=2", "--set", "plan.pp=2",
                   "--set", "cluster.faults.stragglers=[{device: 3, slowdown: 0.7}]",
                   "--format", "json"],
    "degraded-link": ["run", "llama2-7b", "--set", "cluster.nodes=2", "--set", "plan.tp=2",
                      "--set", "cluster.faults.links=[{between: [nic0.0, leaf0.0], "
                      "bandwidth_factor: 0.5}]", "--format", "json"],
    "per-device": ["run", "llama2-7b", "--set", "cluster.nodes=2", "--set", "plan.pp=2",
                   "--set", "plan.tp=2", "--per-device", "--format", "json"],
    "h100-tree": ["run", "llama3-8b", "--cluster", "dgx-h100", "--set", "cluster.nodes=4",
                  "--set", "plan.collective=tree", "--format", "json"],
    "tpu-torus": ["run", "gpt2", "--cluster", "tpu-v4", "--format", "json"],
    "fp8-unequal-split": ["run", "llama3-70b", "--set", "training.precision=fp8",
                          "--set", "plan.pp=4", "--set", "plan.stage_layers=[18, 20, 20, 22]",
                          "--format", "json"],
    "table-145b": ["run", "examples/megatron-145b.yaml"],
    # Studies.
    "validate": ["validate", "--format", "json"],
    "plan-gpt2": ["plan", "gpt2", "--cluster", "single-node", "--top", "3"],
    "check-llama2-7b": ["check", "llama2-7b", "--set", "cluster.nodes=4"],
    "check-oom": ["check", "llama2-70b", "--set", "plan.tp=1", "--set", "plan.pp=1",
                  "--set", "cluster.nodes=1"],
    "whatif": ["whatif", "gpt2", "--scale", "memory_bandwidth=2", "--format", "json"],
    "topo": ["topo", "dgx-a100", "--set", "cluster.nodes=4", "--route", "0", "31"],
    "roofline": ["roofline", "gpt2", "--device", "A100-SXM4-80GB", "--mode", "train"],
}
