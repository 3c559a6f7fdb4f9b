"""Tests of simwall.roofline: the memory-wall point of Gholami et al. 2024 ("AI and Memory
Wall", IEEE Micro 44(3)) on a CPU, and the rendered table."""

from __future__ import annotations

import pytest

from simwall.config import DeviceSpec, ModelSpec, TrainingSpec, Workload
from simwall.errors import SimwallError
from simwall.model.roofline import render, roofline_rows

# Intel Xeon Gold 6242 (Intel ARK): 16 cores, 2.8 GHz base, two AVX-512 FMA units:
# 16 x 2.8e9 x 2 units x 16 fp32 lanes x 2 FLOP = 2.87e12 FLOP/s fp32; six channels of
# DDR4-2933: 6 x 2933e6 x 8 B = 140.8 GB/s.
XEON = DeviceSpec(name="Xeon Gold 6242", kind="cpu", peak_flops={"fp32": 16 * 2.8e9 * 64},
                  memory_capacity=384e9, memory_bandwidth=6 * 2933e6 * 8)
FP32 = TrainingSpec(global_batch=1, precision="fp32")
# BERT-large: Devlin et al. 2019, Sec. 3 (L=24, H=1024, A=16), max sequence 512, vocab 30522.
BERT = Workload(name="bert-large", training=FP32, model=ModelSpec(
    kind="bert", layers=24, hidden=1024, heads=16, vocab=30522, seq_len=512))
# GPT-2 1.5B: Radford et al. 2019, Table 2 (48 layers, d_model 1600), 25 heads, vocab
# 50257, context 1024.
GPT2 = Workload(name="gpt2-1.5b", training=FP32, model=ModelSpec(
    layers=48, hidden=1600, heads=25, vocab=50257, seq_len=1024))


def test_memory_wall_on_cpu():
    bert = roofline_rows(BERT, XEON, "prefill")
    ridge = bert[0]["ridge_flop_per_byte"]
    layer_mm = [r for r in bert if r["part"] == "layer" and r["kind"] == "matmul"]
    assert layer_mm and all(r["bound"] == "compute" for r in layer_mm)
    assert min(r["intensity"] for r in layer_mm) > 5 * ridge
    gpt2 = roofline_rows(GPT2, XEON, "decode")
    layer = [r for r in gpt2 if r["part"] == "layer"]
    assert all(r["bound"] == "memory" for r in gpt2)
    assert max(r["intensity"] for r in gpt2) < 10
    # Per-token time: all layers plus embedding and head, far above FLOP / peak.
    per_token_s = (GPT2.model.layers * sum(r["time_s"] for r in layer)
                   + sum(r["time_s"] for r in gpt2 if r["part"] != "layer"))
    flop = (GPT2.model.layers * sum(r["flop"] for r in layer)
            + sum(r["flop"] for r in gpt2 if r["part"] != "layer"))
    assert per_token_s > 20 * flop / XEON.peak("fp32")
    # The decode matmuls' intensity sits far below the BERT ones.
    dec_mm = [r["intensity"] for r in layer if r["kind"] == "matmul"]
    assert max(dec_mm) * 50 < min(r["intensity"] for r in layer_mm)


def test_rows_and_render():
    rows = roofline_rows(GPT2, XEON, "train")
    assert {r["pass"] for r in rows} == {"fwd", "bwd"}
    assert sum(r["share"] for r in rows) == pytest.approx(1.0)
    text = render(rows)
    lines = text.splitlines()
    assert "Xeon Gold 6242" in lines[0] and "mode train" in lines[0]
    assert f"{rows[0]['ridge_flop_per_byte']:.1f} FLOP/byte" in lines[0]
    assert len(lines) == 4 + len(rows) + 1 and lines[-1].startswith("total")
    # Columns are aligned: every body line is as wide as the separator or narrower.
    assert len({line.index("fwd") for line in lines[3:] if " fwd " in line}) == 1
    assert render([]) == "(no ops)\n"
    with pytest.raises(SimwallError):
        roofline_rows(GPT2, XEON, "serve")


def test_render_says_the_total_covers_one_layer():
    """The total sums the embedding, ONE layer and the head: the table says so, in the
    total row and in a line naming the model's layer count, so the head cannot be read
    as dominant over the whole model."""
    rows = roofline_rows(GPT2, XEON, "train")
    assert {r["model_layers"] for r in rows} == {48}
    lines = render(rows).splitlines()
    assert lines[1] == ("layer rows: one dense layer of the model's 48; total and share "
                        "cover the rows listed, not the whole model")
    assert lines[-1].split()[:6] == ["total", "embedding", "+", "1", "layer", "+"]
    # Rows without the layer count (made elsewhere) still render, without the number.
    bare = [{k: v for k, v in r.items() if k != "model_layers"} for r in rows]
    assert render(bare).splitlines()[1].startswith("layer rows: one dense layer; ")
