"""Tests of simwall.plots: every plot writes a non-empty image and returns its data."""

from __future__ import annotations

import builtins
import csv
import json

import pytest

pytest.importorskip("matplotlib")

from simwall import api
from simwall.errors import ConfigError, SimwallError
from simwall.model.roofline import roofline_rows
from simwall.studies import plots, whatif

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def traced():
    return api.simulate("gpt2", trace=True, **{"plan.pp": 2, "plan.dp": 4,
                                                "training.micro_batch": 2})


def written(fig, path):
    plots.save(fig, path)
    data = path.read_bytes()
    assert len(data) > 0
    if path.suffix == ".png":
        assert data.startswith(PNG_MAGIC)
    return data


def test_breakdown_plot(tmp_path, traced):
    rows = [{"label": "a", **traced.breakdown_s}, {"label": "b", **traced.breakdown_s}]
    fig, data = plots.breakdown_plot(rows)
    written(fig, tmp_path / "b.png")
    assert [d["label"] for d in data] == ["a", "b"]
    assert sum(v for k, v in data[0].items() if k != "label") == pytest.approx(
        traced.step_time_s)


def test_svg_by_suffix(tmp_path, traced):
    fig, _ = plots.breakdown_plot([{"label": "x", **traced.breakdown_s}])
    text = written(fig, tmp_path / "b.svg")
    assert b"<svg" in text[:500]


def test_memory_plot(tmp_path, traced):
    fig, data = plots.memory_plot(traced)
    written(fig, tmp_path / "m.png")
    assert len(data) == 2
    for d, dev in zip(data, traced.memory["devices"]):
        parts = sum(d[k] for k in ("params_bytes", "grads_bytes", "optimizer_bytes",
                                   "activations_bytes", "other_bytes", "reserved_bytes"))
        assert parts == pytest.approx(dev["peak_bytes"])


def test_memory_timeline_plot(tmp_path, traced):
    fig, data = plots.memory_timeline_plot(traced)
    written(fig, tmp_path / "t.png")
    assert data and all(d["total_bytes"] >= d["activations_bytes"] >= 0 for d in data)
    # The engine's reported peak is the highest point of this curve.
    assert max(d["total_bytes"] for d in data) == pytest.approx(
        traced.memory["devices"][0]["peak_bytes"])
    times = [d["time_s"] for d in data]
    assert times == sorted(times) and times[-1] <= traced.step_time_s


def test_memory_timeline_needs_trace():
    with pytest.raises(SimwallError, match="trace=True"):
        plots.memory_timeline_plot(api.simulate("gpt2"))


def test_roofline_plot(tmp_path):
    prep = api.prepare("gpt2")
    rows = roofline_rows(prep.workload, prep.device, "train")
    fig, data = plots.roofline_plot(rows, prep.device)
    written(fig, tmp_path / "r.png")
    assert len(data) == sum(1 for r in rows if r["flop"] > 0 and r["time_s"] > 0)
    peak = prep.device.peak("bf16")
    for d in data:  # no op beats the roof
        assert d["achieved_flop_per_s"] <= peak * (1 + 1e-9)
        assert d["achieved_flop_per_s"] <= (prep.device.memory_bandwidth_bytes_per_s
                                            * d["intensity_flop_per_byte"] * (1 + 1e-9))


def test_generations_plot(tmp_path):
    rows = whatif.generations("gpt2", None, 2)
    fig, data = plots.generations_plot(rows)
    written(fig, tmp_path / "g.png")
    assert len(data) == len(rows)
    for d in data:
        total = sum(v for k, v in d.items() if k.endswith("_pct") and k != "wall_pct")
        assert total == pytest.approx(100.0)


def test_run_plot(tmp_path, traced):
    fig, data = plots.run_plot(traced)
    written(fig, tmp_path / "run.png")
    assert sum(d["value"] for d in data if d["kind"] == "breakdown") == pytest.approx(
        traced.step_time_s)


def _records():
    out = []
    for pp in (1, 2):
        for zero in (0, 1):
            r = api.simulate("gpt2", **{"plan.pp": pp, "plan.zero": zero})
            out.append(r.to_record())
    return out


@pytest.fixture(scope="module")
def records():
    return _records()


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_columns_plot_cli(tmp_path, capsys, records, suffix):
    path = tmp_path / f"results{suffix}"
    if suffix == ".csv":
        with path.open("w", newline="", encoding="utf-8") as fh:
            wr = csv.DictWriter(fh, fieldnames=list(records[0]))
            wr.writeheader()
            wr.writerows(records)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    from simwall.cli import main

    out = tmp_path / "p.png"
    code = main(["plot", str(path), "--x", "plan.pp", "--y", "step_time_s", "--hue",
                 "plan.zero", "-o", str(out), "--format", "json"])
    text, err = capsys.readouterr()
    assert code == 0, err
    assert out.read_bytes().startswith(PNG_MAGIC)
    data = json.loads(text)
    assert sorted(float(d["step_time_s"]) for d in data) == sorted(
        r["step_time_s"] for r in records)


def test_columns_plot_errors(tmp_path, records):
    with pytest.raises(ConfigError, match="did you mean 'step_time_s'"):
        plots.columns_plot(records, "plan.pp", "step_time", source="r.csv")
    bad = tmp_path / "r.jsonl"
    bad.write_text("{}\nnot json\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="line 2"):
        plots.read_records(bad)
    with pytest.raises(ConfigError, match="missing.csv: no such file"):
        plots.read_records(tmp_path / "missing.csv")


def test_bad_suffix(traced, tmp_path):
    fig, _ = plots.breakdown_plot([{"label": "x", **traced.breakdown_s}])
    with pytest.raises(ConfigError, match=r"\.png or \.svg"):
        plots.save(fig, tmp_path / "x.jpg")


def test_missing_matplotlib(monkeypatch):
    real = builtins.__import__

    def fake(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(SimwallError, match=r"simwall\[plot\]"):
        plots.breakdown_plot([{"label": "x"}])


@pytest.mark.parametrize("argv", [
    ["run", "gpt2", "--plot", "{tmp}/run.png"],
    ["roofline", "gpt2", "--plot", "{tmp}/roof.png"],
    ["whatif", "gpt2", "--scale", "nic=2", "--no-elasticities", "--plot", "{tmp}/w.png"],
])
def test_cli_plot_flags(tmp_path, capsys, argv):
    from simwall.cli import main

    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code = main(argv)
    _, err = capsys.readouterr()
    assert code == 0, err
    assert (tmp_path / argv[-1].rsplit("/", 1)[1]).read_bytes().startswith(PNG_MAGIC)


# ---------------------------------------------------------------------------------------
# Scatter, filter, Pareto front


def _brute_front(xs, ys, max_x=False, max_y=False):
    """On the front: no other point at least as good on both axes, better on one."""
    sx, sy = (-1 if max_x else 1), (-1 if max_y else 1)
    pts = [(sx * x, sy * y) for x, y in zip(xs, ys)]
    return [not any(a <= x and b <= y and (a < x or b < y) for a, b in pts)
            for x, y in pts]


def test_columns_plot_filter_pareto_hue(tmp_path, records):
    fig, data = plots.columns_plot(records, "memory.peak_bytes", "step_time_s",
                                   hue="plan.zero", where="plan.pp == 1", pareto=True)
    save_nonempty(fig, tmp_path / "s.png")
    assert len(data) == 2 and all(set(d) == {"memory.peak_bytes", "step_time_s",
                                            "plan.zero", "pareto"} for d in data)
    assert [d["pareto"] for d in data] == _brute_front(
        [d["memory.peak_bytes"] for d in data], [d["step_time_s"] for d in data])
    # a hue of many distinct numbers is drawn on a colour scale (a colour bar axis)
    many = [{**records[0], "x": float(i), "h": float(i)} for i in range(12)]
    fig, _ = plots.columns_plot(many, "x", "step_time_s", hue="h")
    assert len(fig.axes) == 2
    with pytest.raises(ConfigError, match="no rows left"):
        plots.columns_plot(records, "plan.pp", "step_time_s", where="plan.pp > 10")
    with pytest.raises(ConfigError, match="needs --pareto"):
        plots.columns_plot(records, "plan.pp", "step_time_s", maximize_y=True)
    with pytest.raises(ConfigError, match="not numeric"):
        plots.columns_plot(records, "plan.schedule", "step_time_s", pareto=True)


def save_nonempty(fig, path):
    plots.save(fig, path)
    assert path.read_bytes().startswith(PNG_MAGIC)


def test_columns_plot_cli_pareto(tmp_path, capsys, records):
    from simwall.cli import main

    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    out = tmp_path / "p.svg"
    code = main(["plot", str(path), "--x", "memory.peak_bytes", "--y", "mfu",
                 "--where", "memory.fits == true", "--pareto", "--maximize-y", "-o", str(out),
                 "--format", "json"])
    text, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(text)
    assert len(data) == len(records)
    assert [d["pareto"] for d in data] == _brute_front(
        [d["memory.peak_bytes"] for d in data], [d["mfu"] for d in data], max_y=True)
    assert out.read_text(encoding="utf-8").lstrip().startswith("<?xml")
