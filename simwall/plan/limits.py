"""Size limits: refuse inputs far beyond any real training run before they cost hours.

Every size in a workload or cluster is a positive integer with no upper bound in the
schema, so a typo (``nodes: 100000000``, ``global_batch: 4e9``) could make simwall build a
graph of a billion devices, step through a billion micro-batches or allocate a list of a
billion gradient buckets. These guards turn such inputs into a located
:class:`~simwall.errors.ConfigError` in well under a second.

Each limit sits well above the largest published run (so no real configuration is
refused) and below the size at which simwall's own cost grows past a few seconds. They
are simwall's own engineering limits, not hardware facts; the rationale is given next to
each. ``check_workload`` and ``check_cluster`` need only the validated inputs;
``check_resolved`` needs the resolved plan (called at the end of
:func:`simwall.plan.resolve`). :data:`MAX_DP_BUCKETS` needs the model's parameter counts,
so it is checked a layer up, by :func:`simwall.model.limits.check_dp_buckets`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..config.limits import MAX_DEVICES, MAX_LAYERS
from ..errors import ConfigError

# MAX_DEVICES and MAX_LAYERS (with their rationale) live in simwall/config/limits.py: the
# schema bounds list lengths by them (stragglers, stage_layers) while reading the input.

if TYPE_CHECKING:  # pragma: no cover
    from ..config import ClusterSpec, Workload
    from .layout import Plan

__all__ = [
    "MAX_BATCH_SEQUENCES",
    "MAX_DEVICES",
    "MAX_DP_BUCKETS",
    "MAX_ENGINE_TASKS",
    "MAX_LAYERS",
    "MAX_MODEL_DIM",
    "MAX_NICS_PER_NODE",
    "check_cluster",
    "check_engine_tasks",
    "check_resolved",
    "check_workload",
    "engine_tasks",
]

#: NICs per node. DGX nodes have 8 compute NICs (plus 2 storage); an NVLink domain taken
#: as one node has one per GPU: 72 in a GB200 NVL72 rack, 576 in the Rubin Ultra NVL576
#: NVIDIA announced (GTC 2025). 576 bounds the graph (each NIC is a graph node with its
#: own links) while admitting every announced NVLink domain.
MAX_NICS_PER_NODE = 576

#: hidden, ffn_hidden, heads, kv_heads, vocab and seq_len. The largest published values
#: are far below: hidden 25,600 (Megatron 1T), ffn 53,248 (Llama 3 405B), vocab 256,000
#: (Gemma), context 10M tokens (Llama 4 Scout). 2^24 keeps every product of sizes a finite
#: float (a 10^300 sequence length would overflow to inf and make nonsense results).
MAX_MODEL_DIM = 2 ** 24

#: global_batch and micro_batch, in sequences. Published global batches are a few
#: thousand sequences (GPT-3: 1,536; Llama 3: 16M tokens = 2,048 x 8,192); 2^24 sequences
#: is 4,000x that.
MAX_BATCH_SEQUENCES = 2 ** 24

#: Compute tasks the SimPy engine runs per step: 2 (forward, backward) x micro-batches per
#: replica x model chunks x simulated replicas (1 on a symmetric run, dp per device or with
#: stragglers): one count per simulated stream, checked when the mode is known
#: (:func:`check_engine_tasks`, from :func:`simwall.engine.step.run_prepared`). The engine
#: does about 200,000 tasks per second, so 2^20 tasks take about 5 s. GPT-3 175B on 1,024
#: GPUs (pp 8, 96 micro-batches) needs 1,536 symmetric / 24,576 per-device tasks.
MAX_ENGINE_TASKS = 2 ** 20

#: Data-parallel gradient buckets per stage per step. PyTorch DDP's 25 MB buckets over a
#: 1T-parameter model held on one stage in fp32 gradients give 160,000 buckets; each
#: bucket is a few Python operations, so 10^6 buckets cost about a second.
MAX_DP_BUCKETS = 1_000_000


def _too_big(source: str, key: str, found: int, limit: int, why: str,
             line: int | None = None, what: str = "") -> ConfigError:
    return ConfigError(source, key, f"{what}{found:,} is more than simwall's limit of "
                       f"{limit:,} ({why}; see simwall/plan/limits.py)", line=line)


def check_workload(workload: Workload) -> None:
    """Refuse model and batch sizes beyond :data:`MAX_LAYERS`, :data:`MAX_MODEL_DIM`,
    :data:`MAX_BATCH_SEQUENCES`; a :class:`ConfigError` names the key."""
    src = workload.file
    m, t = workload.model, workload.training
    if m.layers > MAX_LAYERS:
        raise _too_big(src, "model.layers", m.layers, MAX_LAYERS,
                       "the deepest published models have about 128 layers",
                       workload.line("model.layers"))
    for key in ("hidden", "ffn_hidden", "heads", "kv_heads", "vocab", "seq_len"):
        value = getattr(m, key)
        if value is not None and value > MAX_MODEL_DIM:
            raise _too_big(src, f"model.{key}", value, MAX_MODEL_DIM,
                           "far above any published model", workload.line(f"model.{key}"))
    for key in ("global_batch", "micro_batch"):
        value = getattr(t, key)
        if value > MAX_BATCH_SEQUENCES:
            raise _too_big(src, f"training.{key}", value, MAX_BATCH_SEQUENCES,
                           "published global batches are a few thousand sequences",
                           workload.line(f"training.{key}"))
    devices = workload.defaults.devices
    if devices is not None and devices > MAX_DEVICES:
        raise _too_big(src, "defaults.devices", devices, MAX_DEVICES,
                       "the largest training clusters have about 100,000 devices",
                       workload.line("defaults.devices"))


def check_cluster(cluster: ClusterSpec) -> None:
    """Refuse clusters beyond :data:`MAX_DEVICES` or :data:`MAX_NICS_PER_NODE`, and
    stragglers naming a device twice or one the cluster does not have (``nodes: auto`` is checked
    once resolved)."""
    src = cluster.file
    if cluster.devices_per_node > MAX_DEVICES:
        raise _too_big(src, "devices_per_node", cluster.devices_per_node,
                       MAX_DEVICES, "the largest training clusters have about 100,000 "
                       "devices", cluster.line("devices_per_node"))
    if isinstance(cluster.nodes, int) and cluster.nodes * cluster.devices_per_node > MAX_DEVICES:
        raise _too_big(src, "nodes", cluster.nodes * cluster.devices_per_node, MAX_DEVICES,
                       "the largest training clusters have about 100,000 devices",
                       cluster.line("nodes"), what=f"{cluster.nodes:,} nodes x "
                       f"{cluster.devices_per_node} = ")
    if cluster.inter.nics_per_node > MAX_NICS_PER_NODE:
        raise _too_big(src, "inter.nics_per_node", cluster.inter.nics_per_node, MAX_NICS_PER_NODE,
                       "NVLink domains of up to 576 GPUs have one NIC per GPU", cluster.line("inter.nics_per_node"))
    first: dict[int, int] = {}
    for i, s in enumerate(cluster.faults.stragglers):
        # One entry per device (so never more entries than devices): a second one would
        # silently replace the first.
        if s.device in first:
            key = f"faults.stragglers[{i}].device"
            raise ConfigError(src, key, f"device {s.device} is already slowed by "
                              f"faults.stragglers[{first[s.device]}] (one entry per device)",
                              line=cluster.line(key))
        first[s.device] = i
    seen: dict[int, int] = {}
    for i, m in enumerate(cluster.mixed):
        for j, node in enumerate(m.nodes):
            key = f"mixed[{i}].nodes[{j}]"
            if node in seen:
                raise ConfigError(src, key, f"node {node} is already given a device by "
                                  f"mixed[{seen[node]}] (one entry per node)",
                                  line=cluster.line(key))
            seen[node] = i
            if isinstance(cluster.nodes, int) and node >= cluster.nodes:
                raise ConfigError(src, key, f"no node {node}: the cluster has nodes 0 to "
                                  f"{cluster.nodes - 1}", line=cluster.line(key))
    if isinstance(cluster.nodes, int):
        world = cluster.nodes * cluster.devices_per_node
        for i, s in enumerate(cluster.faults.stragglers):
            if s.device >= world:
                key = f"faults.stragglers[{i}].device"
                raise ConfigError(src, key, f"no device {s.device}: the cluster has devices 0 "
                                  f"to {world - 1}", line=cluster.line(key))


def engine_tasks(plan: Plan, per_device: bool) -> int:
    """Compute tasks the engine will run for one step (see :data:`MAX_ENGINE_TASKS`):
    those of the pp streams of a symmetric run, or of all pp x dp streams per device."""
    replicas = plan.dp if per_device else 1
    passes = 3 if plan.schedule == "zero_bubble" else 2    # F, B (and W when split)
    return passes * plan.micro_batches * plan.chunks * replicas


def check_engine_tasks(workload: Workload, plan: Plan, per_device: bool) -> None:
    """Refuse a step whose simulated streams would run more than :data:`MAX_ENGINE_TASKS`
    tasks (``per_device``: every DP replica is simulated); the error names
    ``training.global_batch`` in the workload's file."""
    tasks = engine_tasks(plan, per_device)
    if tasks > MAX_ENGINE_TASKS:
        replicas = plan.dp if per_device else 1
        passes = tasks // (plan.micro_batches * plan.chunks * replicas)
        raise ConfigError(workload.file, "training.global_batch",
                          f"gives {plan.micro_batches:,} micro-batches per replica x "
                          f"{plan.chunks} model chunks x {passes} passes x {replicas} "
                          f"replicas = {tasks:,} "
                          f"engine tasks per step, more than simwall's limit of "
                          f"{MAX_ENGINE_TASKS:,} (raise training.micro_batch or lower "
                          f"training.global_batch; see simwall/plan/limits.py)",
                          line=workload.line("training.global_batch"))


def check_resolved(workload: Workload, cluster: ClusterSpec, plan: Plan) -> None:
    """Checks that need the resolved plan: cluster size and stragglers (now that
    ``nodes`` is known). Engine tasks depend on the simulation mode and are checked when
    it is known (:func:`check_engine_tasks`); DP buckets need the model's parameter counts
    (:func:`simwall.model.limits.check_dp_buckets`)."""
    check_cluster(cluster)
