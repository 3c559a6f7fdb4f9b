"""Memory tiers: what offloading model state to host memory costs per step (pure, no simpy).

Two modes, as ``plan.offload`` names them (``simwall.model.memory.device_memory`` already moves
the offloaded bytes from device to host memory):

- ``optimizer``: ZeRO-Offload (Ren et al., "ZeRO-Offload: Democratizing Billion-Scale
  Model Training", USENIX ATC 2021, Sec. 4.1 and Fig. 2/5). The fp32 master weights and
  Adam moments live in host DRAM. Each step the device's 16-bit gradients of its
  optimizer shard go device -> host over PCIe, the CPU runs Adam on them, and the updated
  16-bit parameters come host -> device. The paper overlaps the gradient copy with the
  backward pass (Sec. 4.1), so only what the backward of the last micro-batch cannot hide
  is exposed.
- ``optimizer+params``: ZeRO-Infinity (Rajbhandari et al., "ZeRO-Infinity: Breaking the
  GPU Memory Wall for Extreme Scale Deep Learning", SC21, Sec. 5 and 6): the 16-bit
  parameters live in host memory too and are fetched over PCIe layer by layer before
  each forward and each backward (prefetched one layer ahead, like ZeRO-3's all-gather),
  on top of the ``optimizer`` transfers above.

The CPU Adam step is memory-bound on host DRAM (a handful of FLOP per parameter against
tens of bytes): its time is the bytes one optimizer step moves
(:func:`simwall.model.optime.optimizer_step_bytes`; 28 B per parameter for mixed-precision Adam:
read the 16-bit gradient, fp32 master weight and two moments, write those three back and
the 16-bit copy, the data flow of Ren et al. 2021 Fig. 2) over host DRAM bandwidth.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..config import PRECISION_BYTES, ClusterSpec, TrainingSpec
from ..errors import ConfigError
from ..hardware.catalog import get_device
from ..model.optime import optimizer_step_bytes
from ..net import Topology
from ..plan import Plan

__all__ = [
    "DEFAULT_HOST_CPU",
    "OFFLOAD_MODES",
    "OffloadTimes",
    "host_link_bytes_per_s",
    "host_memory_bandwidth_bytes_per_s",
    "host_optimizer_s",
    "layer_fetch_s",
    "offload_candidates",
    "offload_times_s",
    "param_fetch_s",
    "step_host_bytes",
]

#: Offload modes in order of device memory saved (``plan.offload``).
OFFLOAD_MODES = ("none", "optimizer", "optimizer+params")

#: Host CPU used when a cluster's ``host.cpu`` names none: the only CPU in the catalog,
#: Intel Xeon Gold 6242 (simwall/catalog/devices.yaml cites Intel ARK; the CPU platform
#: of Gholami et al., "AI and Memory Wall", IEEE Micro 2024). Our assumption: one such
#: socket per node, its DRAM bandwidth shared equally by the node's devices.
DEFAULT_HOST_CPU = "Xeon Gold 6242"


@dataclass(frozen=True)
class OffloadTimes:
    """Per-step offload costs of one device, seconds.

    ``grad_d2h_s``: gradient copy device -> host (all of it; ``grad_exposed_s`` is the part
    the last backward does not hide); ``cpu_optimizer_s``: Adam on the CPU;
    ``param_h2d_s``: updated 16-bit parameters host -> device; ``optimizer_s``: what the
    step waits for after the backward (exposed gradient copy + CPU Adam + parameter copy).
    """

    grad_d2h_s: float
    grad_exposed_s: float
    cpu_optimizer_s: float
    param_h2d_s: float

    @property
    def optimizer_s(self) -> float:
        return self.grad_exposed_s + self.cpu_optimizer_s + self.param_h2d_s

    def as_dict(self) -> dict[str, float]:
        return {"grad_d2h_s": self.grad_d2h_s, "grad_exposed_s": self.grad_exposed_s,
                "cpu_optimizer_s": self.cpu_optimizer_s, "param_h2d_s": self.param_h2d_s,
                "optimizer_s": self.optimizer_s}


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(None, name, f"must be > 0 bytes/s, got {value!r}")


def offload_times_s(params_shard: float, training: TrainingSpec, plan: Plan,
                    pcie_bytes_per_s: float, host_bw_bytes_per_s: float,
                    overlap_s: float = 0.0) -> OffloadTimes:
    """Per-step cost of keeping the optimizer of ``params_shard`` parameters on the host.

    ``params_shard``: parameters whose optimizer state this device owns (its ZeRO shard);
    ``pcie_bytes_per_s``: usable bandwidth of its host link, each direction;
    ``host_bw_bytes_per_s``: its share of host DRAM bandwidth; ``overlap_s``: backward
    compute the gradient copy can hide under (Ren et al. 2021, Sec. 4.1). Returns zeros
    when ``plan.offload`` is ``'none'``.
    """
    if plan.offload == "none" or params_shard <= 0:
        return OffloadTimes(0.0, 0.0, 0.0, 0.0)
    _positive("pcie_bytes_per_s", pcie_bytes_per_s)
    _positive("host_bw_bytes_per_s", host_bw_bytes_per_s)
    grad_b = PRECISION_BYTES[training.grad_precision_]
    d2h = params_shard * grad_b / pcie_bytes_per_s
    cpu = optimizer_step_bytes(params_shard, training.optimizer, training) / host_bw_bytes_per_s
    # optimizer+params: the parameters stay on the host, so the update is not copied
    # back after the step; the next forward fetches them layer by layer instead.
    h2d = 0.0 if plan.offload == "optimizer+params" else (
        params_shard * training.weight_bytes / pcie_bytes_per_s)
    return OffloadTimes(grad_d2h_s=d2h, grad_exposed_s=max(0.0, d2h - max(0.0, overlap_s)),
                        cpu_optimizer_s=cpu, param_h2d_s=h2d)


def param_fetch_s(layer_params: float, training: TrainingSpec, plan: Plan,
                  pcie_bytes_per_s: float) -> float:
    """Seconds to fetch one layer's 16-bit parameters from host memory (per device).

    Only for ``optimizer+params`` (ZeRO-Infinity, Rajbhandari et al. 2021, Sec. 6): with
    ZeRO-3 each DP rank fetches its ``1/dp`` slice over its own PCIe link and the slices
    are then all-gathered (Sec. 6.1, "bandwidth-centric partitioning"); otherwise the
    device fetches the whole (TP-sharded) layer. ``layer_params``: the layer's parameters
    on one TP rank.
    """
    if plan.offload != "optimizer+params" or layer_params <= 0:
        return 0.0
    _positive("pcie_bytes_per_s", pcie_bytes_per_s)
    return layer_params * training.weight_bytes / _fetch_shards(plan) / pcie_bytes_per_s


def _fetch_shards(plan: Plan) -> int:
    """Slices a layer's host-resident weights are fetched in (one per DP rank with
    ZeRO-3, ZeRO-Infinity's bandwidth-centric partitioning; else one)."""
    return plan.dp_cp if (plan.zero == 3 and plan.dp_cp > 1) else 1


def step_host_bytes(params_shard: float, layer_params: float, layers: int,
                    training: TrainingSpec, plan: Plan) -> tuple[float, float]:
    """``(device -> host, host -> device)`` bytes one device moves over its host link in
    a step, as :func:`offload_times_s` and :func:`param_fetch_s` cost them: its gradient
    shard out; the updated 16-bit shard back (``optimizer``), or its slice of each of its
    ``layers`` layers fetched before every forward and backward of every micro-batch
    (``optimizer+params``). ``params_shard``: parameters whose optimizer it owns."""
    if plan.offload == "none":
        return 0.0, 0.0
    d2h = params_shard * PRECISION_BYTES[training.grad_precision_] if params_shard > 0 else 0.0
    h2d = (params_shard * training.weight_bytes
           if (params_shard > 0 and plan.offload == "optimizer") else 0.0)
    if plan.offload == "optimizer+params" and layer_params > 0:
        h2d += (2 * plan.micro_batches * layers * layer_params * training.weight_bytes
                / _fetch_shards(plan))
    return d2h, h2d


def host_memory_bandwidth_bytes_per_s(cluster: ClusterSpec) -> float:
    """One device's share of host DRAM bandwidth, bytes/s.

    The CPU is ``cluster.host.cpu`` (a catalog device of kind ``cpu``) or
    :data:`DEFAULT_HOST_CPU`; its streaming bandwidth (peak x ``efficiency.memory_bw``) is
    shared by the node's ``devices_per_node`` devices (one socket per node, our assumption).
    """
    name = cluster.host.cpu or DEFAULT_HOST_CPU
    cpu = get_device(name, "host.cpu", getattr(cluster, "file", None))
    if cpu.kind != "cpu":
        raise ConfigError(getattr(cluster, "file", None), "host.cpu",
                          f"expected a catalog device of kind 'cpu', got '{cpu.name}' "
                          f"(kind '{cpu.kind}')")
    return (cpu.memory_bandwidth_bytes_per_s * cpu.efficiency.memory_bw
            / cluster.devices_per_node)


def offload_candidates(plan: Plan) -> list[Plan]:
    """Variants of ``plan`` that offload more than it does, least offload first.

    For plan search: when no plan fits device memory, try these (each is
    ``dataclasses.replace(plan, offload=mode)``). ``optimizer+params`` is only offered
    with ZeRO-3 or without data parallelism, where ZeRO-Infinity applies as published.
    """
    start = OFFLOAD_MODES.index(plan.offload)
    out = []
    for mode in OFFLOAD_MODES[start + 1:]:
        if mode == "optimizer+params" and plan.dp_cp > 1 and plan.zero != 3:
            continue
        out.append(replace(plan, offload=mode))
    return out


def host_link_bytes_per_s(topology: Topology, device_index: int) -> float:
    """Usable bandwidth of device ``device_index``'s host link (PCIe), bytes/s each way:
    the edge's capacity (bandwidth times the link's ``efficiency``; ``Topology.host_edge``)."""
    return float(topology.capacity(topology.host_edge(device_index)))


def host_optimizer_s(topology: Topology, training: TrainingSpec, plan: Plan, stage: int,
                     params_shard: float, backward_s: float) -> float:
    """What the step waits for after the backward when ``plan.offload`` keeps the
    optimizer on the host (:meth:`OffloadTimes.optimizer_s`), for pipeline ``stage``;
    ``backward_s``: one micro-batch's backward compute there (hides the gradient copy)."""
    pcie = host_link_bytes_per_s(topology, plan.device_of(stage, 0, 0))
    host_bw = host_memory_bandwidth_bytes_per_s(topology.cluster)
    return offload_times_s(params_shard, training, plan, pcie, host_bw,
                           overlap_s=backward_s).optimizer_s


def layer_fetch_s(topology: Topology, training: TrainingSpec, plan: Plan, stage: int,
                  layer_params: float) -> float:
    """:func:`param_fetch_s` over the host link of ``stage``'s first device."""
    if plan.offload != "optimizer+params":
        return 0.0
    pcie = host_link_bytes_per_s(topology, plan.device_of(stage, 0, 0))
    return param_fetch_s(layer_params, training, plan, pcie)
