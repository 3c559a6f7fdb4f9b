"""Size limits checked while input is read: YAML values per file and list lengths.

These bound what a file (or a Python caller) can make simwall hold before any model
runs: a YAML alias bomb (a few lines whose aliases expand to billions of values), a list
of a million ``plan.stage_layers`` entries, 100,000 stragglers. Each is refused as a
located :class:`~simwall.errors.ConfigError` naming the key and the limit.

Like those in :mod:`simwall.plan.limits` (which re-exports :data:`MAX_DEVICES` and
:data:`MAX_LAYERS` from here), they are simwall's own engineering limits, far above any
real input and below the size at which reading it costs more than a few seconds.
"""

from __future__ import annotations

__all__ = [
    "MAX_DEGRADED_LINKS",
    "MAX_DEVICES",
    "MAX_GRAPH_YAML_VALUES",
    "MAX_LAYERS",
    "MAX_PLANES",
    "MAX_TORUS_DIMS",
    "MAX_YAML_VALUES",
]

#: Values (scalars, lists and mappings, each counted once per place it appears once
#: aliases ``*name`` are expanded) in one YAML document: a workload, cluster, catalog,
#: validation case, sweep file or ``--set`` value. The largest bundled file holds a few
#: hundred; the pure-Python YAML parser composes some 30,000-50,000 values per second, so
#: this bounds reading a file to a second or two, and an alias bomb is refused as soon as
#: its expansion passes the limit (before anything is expanded).
MAX_YAML_VALUES = 50_000

#: The same bound for the explicit graph of a cluster (a graph file, or a cluster file
#: whose values beyond :data:`MAX_YAML_VALUES` are under its ``graph`` key): a written-out
#: 8,192-GPU DGX cluster holds about 350,000 values (some 30,000 nodes and links), which
#: the parser reads in about ten seconds; 1,000,000 bounds reading to half a minute.
#: Larger graphs read faster as GraphML (an XML parser in C).
MAX_GRAPH_YAML_VALUES = 1_000_000

#: Devices in one cluster. The largest published training clusters hold about 100,000
#: GPUs (xAI Colossus, 2024; Llama 3 trained on 16,384 H100s, Dubey et al. 2024 Sec. 3.3).
#: Building the topology graph costs about 0.4 ms per 8-GPU node (networkx), so 2^17
#: devices build in about 6 s; a billion would take days. Also the most entries of
#: ``faults.stragglers`` (one per device at most).
MAX_DEVICES = 2 ** 17

#: Transformer layers. The deepest published LLMs have 96-128 layers (GPT-3 175B: 96;
#: Megatron 1T: 128, Narayanan et al. 2021 Table 1). Per-layer op lists make the cost
#: linear in layers (~6 us each), so 10,000 layers (~80x the deepest) stay under 0.1 s.
#: Also the most entries of ``plan.stage_layers`` (one per model chunk; a chunk holds at
#: least one layer in any useful plan).
MAX_LAYERS = 10_000

#: Entries of ``faults.links`` (degraded or failed links). Failure studies degrade a
#: handful of links; each entry is matched against the topology graph, so 10,000 keeps
#: that well under a second.
MAX_DEGRADED_LINKS = 10_000

#: Entries of ``intra.dims`` / ``inter.dims`` (torus dimensions). Published tori have 3
#: (TPU v4) to 6 (Fugaku's Tofu-D) dimensions.
MAX_TORUS_DIMS = 16

#: Planes of a multi-plane fabric (``inter.planes``). Published designs split a NIC over
#: 2 planes (Alibaba HPN, Qian et al. SIGCOMM 2024, Sec. 5: two 200 Gb/s ports per NIC;
#: NVIDIA Spectrum-X dual-plane), 4 (Spectrum-X quad-plane on ConnectX-8: NVIDIA
#: Network Operator docs, "Software Multiplane Spectrum-X Quick Start") or 8 (DeepSeek's
#: multi-plane fat-tree: Zhao et al., "Insights into DeepSeek-V3", ISCA 2025, arXiv
#: 2505.09343); 64 leaves room for
#: finer splits while keeping a plane's share of a NIC above 6 Gb/s for today's 400 Gb/s.
MAX_PLANES = 64
