"""Energy and cost of one training step (pure): joules per step and per token, average
power per device, and, with a price per device-hour, cost per step and per million tokens.

The model (docs/energy.md):

- **Device power by utilisation.** A device draws its idle power for the whole step, plus
  dynamic core power while its SMs are busy: ``E_dev = P_idle x T + P_core x t_busy``,
  with ``t_busy`` the device's compute time in the step (forward, backward, recompute and
  the optimizer kernel: the stage costs the engine ran, averaged over the stages) capped
  at ``T``. Power linear in utilisation between idle and full load is the server power
  model of Fan, Weber and Barroso, "Power Provisioning for a Warehouse-sized Computer",
  ISCA 2007 (their machine-level model: power linear in CPU utilisation).
- **Memory traffic.** Every byte the ops read or write in device memory (the op-level
  byte counts of :mod:`simwall.model.ops`, per micro-batch, times the micro-batches, plus
  the optimizer step's streaming bytes) costs ``hbm_pj_per_bit`` per bit. So that a
  device at full compute and full memory bandwidth draws exactly its power limit, the
  core's dynamic power is what the limit leaves: ``P_core = P_max - P_idle - e_hbm x 8 x
  B_hbm`` (the HBM and its PHY sit inside the board power the datasheet gives), with the
  catalog's bandwidth ``B_hbm`` (``power.hbm_peak_w``): a what-if faster memory draws
  more at the same pJ/bit, and the core's power stays what it was.
- **Links.** Every byte on every directed edge of the cluster graph (the traffic the
  costing recorded, :func:`simwall.costing.linkload.step_link_bytes`) costs its link
  class's ``energy_pj_per_bit``. Symmetric runs account the representative groups only;
  their bytes are scaled to all the stage's devices (every device of a symmetric stage
  carries what the representative ones do).
- **Node overheads.** Host CPUs and memory, NICs, NVSwitch chips, fans and power-supply
  losses (not the fabric's switches): a factor on the devices' and links' energy
  (``cluster.power_overhead``, default :data:`POWER_OVERHEAD`). The facility (cooling,
  distribution) is ``cluster.pue`` (default 1: the node only).
- **Cost.** ``cluster.price_per_device_hour`` x devices x step time; per million tokens
  divides by the step's tokens. Energy is not priced separately: a device-hour price
  (cloud or amortised) already carries it.

A device without a ``power`` entry in the catalog gives no energy figures (None).
"""

from __future__ import annotations

from collections.abc import Iterable

from ..config import ClusterSpec, DeviceSpec, ModelSpec, TrainingSpec
from ..hardware import links as catalog_links
from ..hardware import resolve_link
from ..memo import memoized
from ..model import memory, optime
from ..model import ops as workload
from ..net import Topology
from ..plan import Plan
from .stage import StageCost

__all__ = ["POWER_OVERHEAD", "device_energy_j", "link_energy_j", "link_pj_per_bit",
           "price_figures", "stage_hbm_bytes", "step_energy"]

#: Node power beyond the accelerators, as a factor on their energy. Measured: an 8 x H100
#: SXM HGX node peaked at 8.4 kW while training with its GPUs near full utilisation
#: (Latif et al., "Empirical Measurements of AI Training Power Demand on a GPU-Accelerated
#: Node", arXiv 2412.08602, 2024), against 8 x 700 W = 5.6 kW of GPU power limit: 8.4 /
#: 5.6 = 1.5. Includes host CPUs and memory, NICs, NVSwitches, fans and power-supply
#: losses of the node; not the network switches outside it nor the facility (``pue``).
#: NOT fitted on the validation run (docs/energy.md). For comparison, the DGX H100
#: datasheet's maximum system power (10.2 kW for the same 5.6 kW of GPUs) gives 1.82.
POWER_OVERHEAD = 1.5

_BITS_PER_BYTE = 8.0
_PJ = 1e-12


@memoized(maxsize=4096)
def stage_hbm_bytes(model: ModelSpec, training: TrainingSpec, plan: Plan, stage: int) -> float:
    """Bytes one device of ``stage`` reads and writes in device memory in one step: the
    stage's ops (forward, backward with recompute) per micro-batch times the micro-batches,
    plus the optimizer step over the device's shard (ZeRO-Offload: on the host, 0)."""
    per_mb, opt = _stage_hbm_parts(model, *workload.per_micro_batch(training, plan), stage)
    return float(per_mb * plan.micro_batches + opt)


@memoized(maxsize=4096)
def _stage_hbm_parts(model: ModelSpec, training: TrainingSpec, plan: Plan, stage: int
                     ) -> tuple[float, float]:
    """:func:`stage_hbm_bytes`' bytes per micro-batch and of the optimizer step, which do
    not depend on the global batch (keyed by :func:`simwall.model.ops.per_micro_batch`)."""
    so = workload.stage_ops(model, training, plan, stage)
    per_mb = sum(op.bytes_ for op in so.fwd) + sum(op.bytes_ for op in so.bwd)
    opt = 0.0
    if plan.offload == "none":
        shard = memory.stage_optimizer_shard_params(model, plan, stage)
        opt = optime.optimizer_step_bytes(shard, training.optimizer, training)
    return per_mb, opt


def device_energy_j(device: DeviceSpec, step_s: float, busy_s: float,
                    hbm_bytes: float) -> dict[str, float] | None:
    """Joules of one device in a step of ``step_s`` seconds with its SMs busy ``busy_s``
    and ``hbm_bytes`` moved to and from its memory: ``{"idle_j", "compute_j", "hbm_j"}``
    (module docstring); None when the catalog gives the device no power figures."""
    p = device.power
    if p is None:
        return None
    e_hbm_j_per_byte = p.hbm_pj_per_bit * _PJ * _BITS_PER_BYTE
    hbm_peak_w = (e_hbm_j_per_byte * device.memory_bandwidth_bytes_per_s
                  if p.hbm_peak_w is None else p.hbm_peak_w)
    core_w = max(0.0, p.max_w - p.idle_w - hbm_peak_w)
    busy = min(max(busy_s, 0.0), step_s)
    return {"idle_j": p.idle_w * step_s, "compute_j": core_w * busy,
            "hbm_j": e_hbm_j_per_byte * max(hbm_bytes, 0.0)}


def link_pj_per_bit(cluster: ClusterSpec) -> dict[str, float]:
    """``energy_pj_per_bit`` per link class name: the catalog's, replaced by the cluster's
    own intra, inter and host links (a ``{base: ..., energy_pj_per_bit: ...}`` override);
    a class without a figure counts 0."""
    out = {name: (spec.energy_pj_per_bit or 0.0) for name, spec in catalog_links().items()}
    for ref in (cluster.intra.link, cluster.inter.link, cluster.host.link):
        spec = resolve_link(ref)
        out[spec.name] = spec.energy_pj_per_bit or 0.0
    return out


def link_energy_j(topology: Topology, loads: Iterable[dict], scales: Iterable[float],
                  per_bit: dict[str, float]) -> dict[str, float]:
    """Joules per link class (``NVLink4``, ``IB-NDR`` ...) of the bytes in ``loads`` (dicts
    edge -> bytes, each times its ``scale``), at ``per_bit[class]`` picojoules per bit
    (:func:`link_pj_per_bit`; a class not there counts 0). Sorted by class name."""
    out: dict[str, float] = {}
    # Symmetric runs pass one shared dict for many stages: its edges' link classes are
    # looked up once (the sums still run load by load, edge by edge, in order).
    classes: dict[int, list[tuple[str, float]]] = {}
    for load, scale in zip(loads, scales, strict=True):
        pairs = classes.get(id(load))
        if pairs is None:
            pairs = classes[id(load)] = [(topology.edge_attrs(edge).get("link"), carried)
                                         for edge, carried in load.items()
                                         if not carried <= 0]
        for cls, carried in pairs:
            e = per_bit.get(cls, 0.0) * _PJ * _BITS_PER_BYTE * carried * scale
            out[cls] = out.get(cls, 0.0) + e
    return dict(sorted(out.items()))


def _symmetric_scale(load: dict, stage_devices: int) -> float:
    """Factor from the devices a symmetric stage's load covers (those sending bytes) to
    all ``stage_devices`` of the stage."""
    senders = {edge[0] for edge, b in load.items() if b > 0 and edge[0][0] == "dev"}
    return stage_devices / len(senders) if senders else 0.0


def price_figures(price_per_device_hour: float | None, world: int, step_s: float,
                  tokens: float) -> dict[str, float] | None:
    """``{"price_per_device_hour", "cost_per_step", "cost_per_million_tokens"}``; None
    without a price."""
    if price_per_device_hour is None:
        return None
    per_step = price_per_device_hour * world * step_s / 3600.0
    return {"price_per_device_hour": price_per_device_hour, "cost_per_step": per_step,
            "cost_per_million_tokens": per_step / tokens * 1e6 if tokens > 0 else 0.0}


def step_energy(model: ModelSpec, training: TrainingSpec, plan: Plan, device: DeviceSpec,
                cluster: ClusterSpec, topology: Topology,
                costs: dict[tuple[int, int], StageCost], step_s: float,
                link_loads: list[dict], symmetric: bool) -> dict:
    """Energy (and cost, when priced) of one step of the whole cluster.

    ``costs``: the (stage, replica) stage costs the engine ran (the replicas it simulated);
    ``link_loads``: :func:`simwall.costing.linkload.step_link_bytes` of the step (one dict
    per stage when ``symmetric``). Returns ``{"energy_j", "j_per_token",
    "power_w_per_device", "parts_j": {...}, "links_j": {class: J}, "sm_busy_fraction",
    "hbm_bytes_per_device", "power_overhead", "pue", "cost": {...} | None}``; the energy
    keys are None when the device has no power figures."""
    tokens = float(plan.global_batch * model.seq_len)
    world = plan.world
    cost = price_figures(cluster.price_per_device_hour, world, step_s, tokens)
    overhead = POWER_OVERHEAD if cluster.power_overhead is None else cluster.power_overhead
    out: dict = {"energy_j": None, "j_per_token": None, "power_w_per_device": None,
                 "power_overhead": overhead, "pue": cluster.pue, "cost": cost}
    if device.power is None or step_s <= 0:
        return out
    # Per-device averages over the stages (and the simulated replicas).
    # The optimizer kernel runs on the device unless ZeRO-Offload moves it to the host.
    on_device_opt = plan.offload == "none"
    busy = [plan.micro_batches * sum(c.fwd_compute_s + c.bwd_compute_s for c in sc.chunks)
            + (sc.optimizer_s if on_device_opt else 0.0) for sc in costs.values()]
    busy_s = sum(min(b, step_s) for b in busy) / len(busy)
    hbm = sum(stage_hbm_bytes(model, training, plan, s) for s in range(plan.pp)) / plan.pp
    dev = device_energy_j(device, step_s, busy_s, hbm)
    assert dev is not None
    if symmetric:
        by_load: dict[int, float] = {}     # stages share load dicts (costing.linkload)
        scales = []
        for load in link_loads:
            scale = by_load.get(id(load))
            if scale is None:
                scale = by_load[id(load)] = _symmetric_scale(load, plan.dp * plan.tp)
            scales.append(scale)
    else:
        scales = [1.0] * len(link_loads)
    links_j = link_energy_j(topology, link_loads, scales, link_pj_per_bit(cluster))
    parts = {k: v * world for k, v in dev.items()}
    parts["links_j"] = sum(links_j.values())
    base_j = sum(parts.values())
    parts["overhead_j"] = base_j * (overhead - 1.0)
    parts["facility_j"] = base_j * overhead * (cluster.pue - 1.0)
    energy = base_j * overhead * cluster.pue
    out.update({"energy_j": energy, "j_per_token": energy / tokens,
                "power_w_per_device": energy / step_s / world, "parts_j": parts,
                "links_j": links_j, "sm_busy_fraction": busy_s / step_s,
                "hbm_bytes_per_device": hbm})
    return out
