"""Tests of simwall.report: the step's views (table, JSON, Chrome trace), the output
format registry, and the record files (one writer, one reader)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import simwall
from simwall import api, read_records, write_records
from simwall.errors import ConfigError
from simwall.registry import OUTPUT_FORMATS
from simwall.report import (
    RESERVED_COLUMNS,
    as_dict,
    chrome_trace,
    columns,
    flat_record,
    render,
    render_table,
)
from simwall.report.records import record_line


@pytest.fixture(scope="module")
def traced(tiny):
    return api.simulate(tiny, "single-node", trace=True,
                        **{"plan.pp": 2, "training.micro_batch": 2})


# ---------------------------------------------------------------------------------------
# Views and output formats


def test_every_registered_format_renders_text(traced):
    assert OUTPUT_FORMATS.choices() == ("table", "json")
    for name in OUTPUT_FORMATS.choices():
        assert isinstance(render(traced, name), str) and render(traced, name)


def test_formats_are_the_views(traced):
    assert render(traced) == render(traced, "table") == render_table(traced)
    # The JSON view is exactly what `simwall run --format json` printed before the split.
    assert render(traced, "json") == traced.to_json() == \
        json.dumps(traced.to_dict(), indent=2, sort_keys=True)
    assert as_dict(traced) == traced.to_dict()
    assert flat_record(traced) == traced.to_record()


def test_unknown_format_is_located(traced):
    with pytest.raises(ConfigError, match="--format: unknown output format 'xml'"):
        render(traced, "xml")


def test_chrome_trace_names_every_stage_and_sorts_events(traced):
    doc = chrome_trace(traced)
    meta = [e for e in doc["traceEvents"] if e["ph"] == "M"]
    pids = sorted({e["pid"] for e in traced.trace_events})
    assert len(pids) >= 2 and {e["pid"] for e in meta} == set(pids)
    assert len(meta) == 6 * len(pids)  # a process name and five stream names per stage
    timed = doc["traceEvents"][len(meta):]
    keys = [(e["pid"], e.get("tid", 0), e["ts"], e["name"]) for e in timed]
    assert keys == sorted(keys) and len(timed) == len(traced.trace_events)
    assert doc["otherData"]["step_time_s"] == traced.step_time_s


# ---------------------------------------------------------------------------------------
# Record files


def test_columns_start_with_the_reserved_ones():
    recs = [{"b": 1, "sweep.index": 0}, {"a": 2, "error": "x"}]
    assert columns(recs) == [*RESERVED_COLUMNS, "b", "a"]


def test_csv_cells_round_trip(tmp_path):
    out = tmp_path / "r.csv"
    rec = {"sweep.index": 0, "sweep.key": "k", "error": None, "x": 0.1, "b": True,
           "n": 3, "s": "auto", "l": [1, 2]}
    write_records(out, [rec])
    assert out.read_text().splitlines()[1] == '0,k,,0.1,true,3,auto,"[1, 2]"'
    back, = read_records(out)
    assert back == {**rec, "l": "[1, 2]"}  # lists and dicts come back as JSON text


def test_lenient_and_strict_jsonl(tmp_path):
    path = tmp_path / "r.jsonl"
    whole = record_line({"sweep.index": 0, "sweep.key": "a"})
    path.write_text(whole + "{}\n\n" + '{"sweep.index": 1, "sw')
    # Lenient (journal, --resume): half a line and non-records are skipped.
    assert read_records(path) == [{"sweep.index": 0, "sweep.key": "a"}]
    with pytest.raises(ConfigError, match="line 4: not JSON"):
        read_records(path, strict=True)
    path.write_text(whole + "{}\n[1]\n")
    with pytest.raises(ConfigError, match="line 3: expected a JSON object"):
        read_records(path, strict=True)
    # Strict (simwall plot): any JSON object is a row; .json is read as JSONL.
    json_path = tmp_path / "r.json"
    json_path.write_text(whole + "{}\n")
    assert read_records(json_path, strict=True) == [{"sweep.index": 0, "sweep.key": "a"}, {}]


def test_missing_file_and_bad_suffix(tmp_path):
    assert read_records(tmp_path / "missing.csv") == []
    with pytest.raises(ConfigError, match=".csv or .jsonl"):
        read_records(tmp_path / "missing.csv", strict=True)
    bad = tmp_path / "r.txt"
    bad.write_text("x\n")
    with pytest.raises(ConfigError, match="expected a .csv, .jsonl or .parquet file"):
        read_records(bad, strict=True)
    with pytest.raises(ConfigError, match="-o: expected an output ending in .csv"):
        read_records(bad)


def test_top_level_names_on_first_access(tmp_path):
    # README: simwall.write_records / simwall.read_records, with nothing imported before.
    code = ("import sys, simwall; p = sys.argv[1]; "
            "simwall.write_records(p, [{'sweep.index': 0, 'sweep.key': 'k', 'x': 1.5}]); "
            "print(simwall.read_records(p))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "r.csv")],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[{'sweep.index': 0, 'sweep.key': 'k', 'error': None, 'x': 1.5}]"
    assert {"read_records", "write_records"} <= set(simwall.__all__)


def test_bad_output_and_missing_pyarrow(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="expected an output ending in .csv"):
        write_records(tmp_path / "r.xlsx", [])
    import builtins
    real_import = builtins.__import__

    def no_pyarrow(name, *a, **k):
        if name.startswith("pyarrow"):
            raise ImportError(name)
        return real_import(name, *a, **k)
    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    with pytest.raises(ConfigError, match="simwall\\[parquet\\]"):
        write_records(tmp_path / "r.parquet", [{"sweep.index": 0}])


def test_parquet_column_of_mixed_types_is_kept_as_json_text(tmp_path):
    pytest.importorskip("pyarrow")
    out = tmp_path / "r.parquet"
    write_records(out, [{"sweep.index": 0, "sweep.plan.dp": "auto"},
                        {"sweep.index": 1, "sweep.plan.dp": 8}])
    assert [r["sweep.plan.dp"] for r in read_records(out)] == ['"auto"', "8"]
