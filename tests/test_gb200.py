"""GB200 and the gb200-nvl72 cluster (issue 16, hardware part)."""

from simwall import simulate
from simwall.hardware.catalog import resolve_device


def test_gb200_per_gpu_specs_are_the_nvl72_rack_figures_over_72():
    d = resolve_device("GB200", "device", "<test>")
    # NVIDIA GB200 NVL72 datasheet: BF16 360 PF sparse, FP8 720 PF sparse, 13.4 TB HBM3e
    # at 576 TB/s, for 72 GPUs.
    assert d.peak("bf16") == 360e15 / 2 / 72
    assert d.peak("fp8") == 720e15 / 2 / 72
    assert abs(d.memory_capacity_bytes - 13.4e12 / 72) < 1e9
    assert d.memory_bandwidth_bytes_per_s == 576e12 / 72


def test_llama3_405b_runs_on_gb200_nvl72():
    r = simulate("llama3-405b", "gb200-nvl72")
    assert r.world == 8192                     # the published run's GPUs; spares idle
    assert r.device == "GB200"
    assert r.step_time_s > 0


def test_one_nvlink_domain_of_72():
    from simwall.engine.prepare import prepare
    prep = prepare("llama3-405b", "gb200-nvl72", {})
    topo = prep.topology
    assert topo.devices_per_node == 72
    assert topo.route(0, 71) == (((("dev", 0), ("nvsw", 0))), (("nvsw", 0), ("dev", 71)))
    assert topo.edge_attrs((("dev", 0), ("nvsw", 0)))["link"] == "NVLink5"
