"""Catalog entries load, cite sources, and what-if overrides change only what they name."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simwall.config import PRECISION_BYTES, DeviceRef, LinkRef
from simwall.errors import ConfigError
from simwall.hardware import catalog as hardware

REQUIRED_DEVICES = ["A100-SXM4-40GB", "A100-SXM4-80GB", "H100-SXM5-80GB", "H200-SXM-141GB",
                    "B200", "MI300X", "TPU-v4", "TPU-v5p", "Xeon Gold 6242"]
REQUIRED_LINKS = ["NVLink3", "NVLink4", "NVLink5", "PCIe4", "PCIe5", "IB-HDR", "IB-NDR",
                  "RoCE-400G", "ICI-v4", "ICI-v5p", "InfinityFabric-MI300X"]


@pytest.mark.parametrize("name", REQUIRED_DEVICES)
def test_every_required_device_loads_with_a_source(name):
    dev = hardware.get_device(name)
    assert dev.name == name
    assert len(dev.source) > 20
    assert dev.memory_capacity_bytes > 1e9
    assert dev.memory_bandwidth_bytes_per_s > 1e10
    assert "fp32" in dev.peak_flop_per_s and "bf16" in dev.peak_flop_per_s


@pytest.mark.parametrize("name", REQUIRED_LINKS)
def test_every_required_link_loads_with_a_source(name):
    link = hardware.get_link(name)
    assert link.name == name
    assert len(link.source) > 20
    assert 1e9 < link.bandwidth_bytes_per_s < 1e13
    assert 0 < link.latency_s < 1e-4


def test_every_catalog_entry_cites_a_source():
    for item in list(hardware.devices().values()) + list(hardware.links().values()):
        assert item.source.strip(), item.name


def test_published_numbers():
    # Spot checks against the datasheets cited in the catalog (dense, per direction).
    a100 = hardware.get_device("A100-SXM4-80GB")
    assert a100.peak("bf16") == 312e12 and a100.memory_bandwidth_bytes_per_s == 2.039e12
    h100 = hardware.get_device("H100-SXM5-80GB")
    assert h100.peak("bf16") == pytest.approx(1979e12 / 2, rel=1e-3)  # datasheet sparse / 2
    assert hardware.get_link("NVLink3").bandwidth_bytes_per_s == 12 * 25e9
    assert hardware.get_link("IB-HDR").bandwidth_bytes_per_s == 200e9 / 8
    assert hardware.get_link("IB-NDR").bandwidth_bytes_per_s == 400e9 / 8


def test_xeon_gold_6242_derivation():
    cpu = hardware.get_device("Xeon Gold 6242")
    assert cpu.kind == "cpu"
    # 16 cores x 2.8 GHz x 64 FP32 FLOP/cycle (2 AVX-512 FMA x 16 lanes x 2).
    assert cpu.peak("fp32") == pytest.approx(16 * 2.8e9 * 64)
    # No tensor cores: 16-bit peak equals the fp32 peak.
    assert cpu.peak("bf16") == cpu.peak("fp32") == cpu.peak("fp16")
    # 6 channels x 2933 MT/s x 8 B.
    assert cpu.memory_bandwidth_bytes_per_s == pytest.approx(6 * 2933e6 * 8, rel=1e-3)


def test_faster_generations_are_faster():
    order = ["A100-SXM4-80GB", "H100-SXM5-80GB", "B200"]
    peaks = [hardware.get_device(n).peak("bf16") for n in order]
    assert peaks == sorted(peaks) and len(set(peaks)) == 3
    nv = [hardware.get_link(n).bandwidth_bytes_per_s for n in ("NVLink3", "NVLink4", "NVLink5")]
    assert nv == sorted(nv) and len(set(nv)) == 3


@pytest.mark.parametrize("name", REQUIRED_DEVICES)
def test_peak_falls_back_to_a_defined_precision(name):
    dev = hardware.get_device(name)
    for p in PRECISION_BYTES:
        assert dev.peak(p) > 0
    assert dev.peak("fp8") >= dev.peak("fp32")


def test_what_if_changes_only_that_field():
    base = hardware.get_device("H100-SXM5-80GB")
    ref = DeviceRef.model_validate({"base": "H100-SXM5-80GB", "memory_bandwidth": 6.0e12})
    dev = hardware.resolve_device(ref)
    assert dev.memory_bandwidth_bytes_per_s == 6.0e12
    assert dev.name != base.name and "memory_bandwidth" in dev.name
    same = base.model_dump(exclude={"name", "memory_bandwidth_bytes_per_s"})
    assert dev.model_dump(exclude={"name", "memory_bandwidth_bytes_per_s"}) == same


@settings(deadline=None, derandomize=True, max_examples=30)
@given(bf16=st.floats(min_value=1e12, max_value=1e16, allow_nan=False))
def test_what_if_peak_keeps_other_precisions(bf16):
    base = hardware.get_device("H100-SXM5-80GB")
    dev = hardware.resolve_device(DeviceRef.model_validate(
        {"base": "H100-SXM5-80GB", "peak_flops": {"bf16": bf16}}))
    assert dev.peak("bf16") == bf16
    for p in ("fp32", "tf32", "fp16", "fp8"):
        assert dev.peak(p) == base.peak(p)


def test_link_what_if():
    link = hardware.resolve_link(LinkRef.model_validate({"base": "IB-HDR", "bandwidth": 1e10}))
    base = hardware.get_link("IB-HDR")
    assert link.bandwidth_bytes_per_s == 1e10 and link.latency_s == base.latency_s


def test_names_ignore_case_and_punctuation():
    assert hardware.get_device("h100 sxm5 80gb").name == "H100-SXM5-80GB"
    assert hardware.get_link("ib_hdr").name == "IB-HDR"


@pytest.mark.parametrize("query, suggestion", [("H100", "H100-SXM5-80GB"), ("MI300", "MI300X"),
                                               ("B100", "B200")])
def test_unknown_device_suggests(query, suggestion):
    with pytest.raises(ConfigError) as exc:
        hardware.get_device(query, source="topologies/x.yaml")
    msg = str(exc.value)
    assert msg.startswith("topologies/x.yaml: device: unknown device")
    assert f"did you mean '{suggestion}'" in msg


def test_unknown_base_names_the_key():
    with pytest.raises(ConfigError) as exc:
        hardware.resolve_device(DeviceRef.model_validate({"base": "H1OO"}), source="c.yaml")
    assert exc.value.key == "device.base" and exc.value.source == "c.yaml"


def test_unknown_link():
    with pytest.raises(ConfigError) as exc:
        hardware.get_link("NVLink9", key="intra.link")
    assert exc.value.key == "intra.link" and "NVLink" in str(exc.value)


def test_a_device_handed_out_cannot_change_the_catalog():
    # The one mutable field of a device is its peak_flops mapping: a caller changing the
    # copy it got (prepare().device) leaves every later run as it was.
    import simwall
    from simwall.api import prepare

    before = simwall.simulate("gpt2", "single-node").step_time_s
    peaks = prepare("gpt2", "single-node").device.peak_flop_per_s
    for k in peaks:
        peaks[k] *= 10
    assert hardware.get_device("A100-SXM4-80GB").peak_flop_per_s["bf16"] == 312e12
    assert simwall.simulate("gpt2", "single-node").step_time_s == before
