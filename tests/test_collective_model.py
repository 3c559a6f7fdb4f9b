"""NCCL-style protocol/latency model, NVLink SHARP, link efficiencies against published
nccl-tests figures, and the ``simwall collective`` command."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simwall.cli.collective import MAX_BYTES, parse_sizes
from simwall.cli.main import main
from simwall.config import load_cluster
from simwall.errors import ConfigError
from simwall.net import build_topology
from simwall.net.collectives import collective_choice
from simwall.net.collectives import protocol as proto
from simwall.net.collectives.protocol import PROTOCOLS

GiB = 1024 ** 3
BUS = {"all_reduce": lambda n: 2 * (n - 1) / n, "all_gather": lambda n: (n - 1) / n,
       "reduce_scatter": lambda n: (n - 1) / n}


def topo(cluster: str, nodes: int, overrides=()):
    return build_topology(load_cluster(cluster, [("nodes", nodes), *overrides]))


def busbw(t, kind: str, bytes_: float, algorithm: str = "auto") -> float:
    n = t.num_devices
    _, _, lat, bw = collective_choice(t, kind, [list(range(n))], bytes_, algorithm)
    return bytes_ / (lat + bw) * BUS[kind](n)


# --- published figures (each within 15%) ------------------------------------------------

def test_dgx_a100_single_node_all_reduce_matches_nccl_tests_175():
    # all_reduce_perf -g 8 on one 8 x A100 SXM4 node: 232.54 GB/s busbw (nccl-tests #175).
    assert busbw(topo("dgx-a100", 1), "all_reduce", 4 * GiB) == pytest.approx(232.54e9, rel=0.15)


def test_h100_single_node_ring_busbw_matches_nccl_tests_212():
    # "effective NVLink bandwidth of 370GB/s ... BusBw when running non-allreduce
    # operations, or when running with NCCL_ALGO=RING" (S. Jeaugey, nccl-tests #212).
    t = topo("dgx-h100", 1)
    for kind in ("all_gather", "reduce_scatter"):
        assert busbw(t, kind, 8 * GiB) == pytest.approx(370e9, rel=0.15)
    assert busbw(t, "all_reduce", 8 * GiB, "ring") == pytest.approx(370e9, rel=0.15)


def test_h100_single_node_nvls_all_reduce_matches_nccl_tests_212():
    # NVLink SHARP all-reduce on 8 H100: peak busbw ~480 GB/s (nccl-tests #212).
    t = topo("dgx-h100", 1)
    algorithm, protocol, _, _ = collective_choice(t, "all_reduce", [list(range(8))], 8 * GiB)
    assert (algorithm, protocol) == ("nvls", "Simple")
    assert busbw(t, "all_reduce", 8 * GiB) == pytest.approx(480e9, rel=0.15)


def test_dgx_a100_multi_node_all_reduce_matches_nccl_812():
    # "On an Nvidia DGX-A100 system we have 8x200Gbit/s IB cards and we measure 192GB/s
    # AllReduce BusBW" (NVIDIA/nccl #812); ring across 8 nodes.
    assert busbw(topo("dgx-a100", 8), "all_reduce", 8 * GiB, "ring") == \
        pytest.approx(192e9, rel=0.15)


def test_dgx_h100_multi_node_ring_matches_ndr_nic_figure_290():
    # NDR at 400 Gb/s: 46-48 GB/s per NIC (nccl-tests #290); 8 NICs per node bound a
    # multi-node ring's busbw at 8 x 47 GB/s.
    assert busbw(topo("dgx-h100", 8), "all_reduce", 8 * GiB, "ring") == \
        pytest.approx(8 * 47e9, rel=0.15)


# --- properties ---------------------------------------------------------------------------

@settings(max_examples=12, deadline=None)
@given(e1=st.floats(0.3, 1.0), e2=st.floats(0.3, 1.0),
       kind=st.sampled_from(sorted(BUS)), log2=st.integers(10, 33), nodes=st.sampled_from([1, 2]))
def test_more_bandwidth_is_never_slower(e1, e2, kind, log2, nodes):
    lo, hi = sorted((e1, e2))
    slow = topo("dgx-a100", nodes, [("intra.link", {"base": "NVLink3", "efficiency": lo})])
    fast = topo("dgx-a100", nodes, [("intra.link", {"base": "NVLink3", "efficiency": hi})])
    g = [list(range(slow.num_devices))]
    t_slow = sum(collective_choice(slow, kind, g, 2.0 ** log2)[2:])
    t_fast = sum(collective_choice(fast, kind, g, 2.0 ** log2)[2:])
    assert t_fast <= t_slow * (1 + 1e-12)


@pytest.mark.parametrize("cluster", ["dgx-a100", "dgx-h100"])
@pytest.mark.parametrize("kind", sorted(BUS))
def test_busbw_never_above_the_link(cluster, kind):
    """Without in-switch reduction a rank cannot beat its usable NVLink bandwidth; with
    NVLS the algorithm bandwidth still cannot (each rank sends and receives the buffer)."""
    t = topo(cluster, 1)
    link = t.context.intra_link
    usable = link.bandwidth_bytes_per_s * link.efficiency
    for log2 in range(10, 34, 3):
        b = 2.0 ** log2
        algorithm, _, lat, bw = collective_choice(t, kind, [list(range(8))], b)
        if algorithm == "nvls":
            assert b / (lat + bw) <= usable
        else:
            assert busbw(t, kind, b) <= usable * (1 + 1e-9)


@pytest.mark.parametrize("cluster,nodes", [("dgx-a100", 1), ("dgx-h100", 1), ("dgx-a100", 4),
                                           ("dgx-h100", 16)])
@pytest.mark.parametrize("kind", sorted(BUS))
def test_protocol_moves_towards_simple_as_messages_grow(cluster, nodes, kind):
    """For one algorithm, larger messages never pick a lower-latency, lower-bandwidth
    protocol (LL -> LL128 -> Simple), and tiny messages pick LL, huge ones not LL."""
    t = topo(cluster, nodes)
    g = [list(range(t.num_devices))]
    order = [PROTOCOLS.index(collective_choice(t, kind, g, 2.0 ** k, "ring")[1])
             for k in range(3, 36)]
    assert order == sorted(order)
    assert order[0] == PROTOCOLS.index("LL") and order[-1] != PROTOCOLS.index("LL")


def test_latency_model_follows_nccl_formula():
    # Ring all-reduce on one node of 8 NVLink GPUs, LL: base 6.6 + 2*7 hops * 0.6 us.
    assert proto.latency_s("ring", "LL", "all_reduce", 8, 1, "nvlink") == pytest.approx(15.0e-6)
    # Tree all-reduce, 64 ranks on 8 nodes, Simple: 8.4 + 2 * (7 * 4.0 + 3 * 14.0).
    assert proto.latency_s("tree", "Simple", "all_reduce", 64, 8, "nvlink") == \
        pytest.approx(148.4e-6)
    # Latency grows with ranks; LL is never slower in latency than Simple.
    for kind in BUS:
        lats = [proto.latency_s("ring", "Simple", kind, r, 1, "nvlink") for r in (2, 4, 8)]
        assert lats == sorted(lats)
        assert proto.latency_s("ring", "LL", kind, 8, 1, "nvlink") < \
            proto.latency_s("ring", "Simple", kind, 8, 1, "nvlink")


def test_no_nccl_class_keeps_the_plain_model():
    """TPU ICI links have no NCCL class: one protocol, the phases' own latency."""
    t = build_topology(load_cluster("tpu-v4", [("nodes", 16)]))
    g = [list(range(t.num_devices))]
    assert collective_choice(t, "all_reduce", g, 1e6)[1] == "Simple"


def test_nvls_only_inside_one_nvswitch_node_that_reduces():
    a100 = topo("dgx-a100", 1)
    assert collective_choice(a100, "all_reduce", [list(range(8))], 8 * GiB)[0] != "nvls"
    h100 = topo("dgx-h100", 2)
    assert collective_choice(h100, "all_reduce", [list(range(16))], 8 * GiB)[0] != "nvls"
    assert collective_choice(h100, "all_reduce", [list(range(8))], 8 * GiB)[0] == "nvls"


# --- the command --------------------------------------------------------------------------

def test_parse_sizes():
    assert parse_sizes("4096") == [4096]
    assert parse_sizes("1K") == [1024]
    assert parse_sizes("1M:8M") == [2 ** 20, 2 ** 21, 2 ** 22, 2 ** 23]
    assert parse_sizes("8G") == [8 * GiB]
    assert parse_sizes("1e9") == [10 ** 9] and parse_sizes("2E+3:8e3") == [2000, 4000, 8000]
    for bad in ("", "8X", "0", "1.5", "8G:1G", "-1M", "1:1T:", "1e-3", "e9", "1e"):
        with pytest.raises(ConfigError):
            parse_sizes(bad)


@pytest.mark.parametrize("size", ["1e30", "1e999", "1M:2000T", "1000000000000001"])
def test_sizes_above_a_petabyte_are_refused(size):
    assert parse_sizes("1e15") == [MAX_BYTES]
    with pytest.raises(ConfigError, match=r"^--bytes: expected at most 1e\+15 bytes"):
        parse_sizes(size)


def test_collective_command_text_and_json(capsys):
    assert main(["collective", "all_reduce", "--cluster", "dgx-h100", "--bytes", "1M:4M"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("# all_reduce on dgx-h100: 8 ranks")
    assert len(lines) == 2 + 3
    assert main(["collective", "all_gather", "--cluster", "dgx-a100", "--bytes", "1G",
                 "--set", "cluster.nodes=2", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ranks"] == 16 and len(doc["rows"]) == 1
    row = doc["rows"][0]
    assert row["busbw_gb_per_s"] == pytest.approx(row["algbw_gb_per_s"] * 15 / 16)
    assert set(row) == {"bytes", "time_us", "algbw_gb_per_s", "busbw_gb_per_s", "algorithm",
                        "protocol"}
    for op in ("send_recv", "all_to_all", "reduce_scatter"):
        assert main(["collective", op, "--cluster", "dgx-a100", "--bytes", "1M"]) == 0


@pytest.mark.parametrize("argv,where", [
    (["collective", "all_reduce", "--cluster", "dgx-a100", "--bytes", "8X"], "--bytes"),
    (["collective", "gather", "--cluster", "dgx-a100", "--bytes", "8G"], "op"),
    (["collective", "all_reduce", "--cluster", "nope", "--bytes", "8G"], "nope"),
    (["collective", "all_reduce", "--cluster", "dgx-a100", "--bytes", "8G:1G"], "--bytes"),
    (["collective", "all_reduce", "--cluster", "dgx-a100", "--bytes", "1e999"], "--bytes"),
    (["collective", "all_reduce", "--cluster", "dgx-a100", "--bytes", "1G",
      "--set", "cluster.nodes=0"], "nodes"),
])
def test_collective_command_bad_input_is_one_located_line(argv, where, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("simwall: error:") and where in err[0]


def test_a_link_latency_reaches_ncclpriced_collectives():
    # Catalog links state their class's reference hop, so they add nothing; a link whose
    # latency is raised adds the difference to each hop of NCCL's latency model.
    from simwall.hardware.catalog import links

    for link in links().values():
        if link.nccl_class is not None:
            assert link.latency_s == proto.REFERENCE_HOP_S[link.nccl_class], link.name
    base = proto.latency_s("ring", "Simple", "all_gather", 64, 8, "nvlink")
    slower = proto.latency_s("ring", "Simple", "all_gather", 64, 8, "nvlink",
                             extra_s=(1e-6, 10e-6))
    # 63 steps: 7 between nodes, 56 inside them.
    assert slower - base == pytest.approx(56 * 1e-6 + 7 * 10e-6)
    group = [list(range(64))]
    fast = collective_choice(topo("dgx-a100", 8), "all_gather", group, 64e6, "ring")
    slow = collective_choice(topo("dgx-a100", 8, [("inter.link.latency", 27e-6)]),
                             "all_gather", group, 64e6, "ring")
    assert slow[2] - fast[2] == pytest.approx(7 * (27e-6 - 2.7e-6))
    assert slow[3] == fast[3]
