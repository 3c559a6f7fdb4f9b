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
from simwall.report.records import count_entries, read_held_records, record_line


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


def test_columns_start_with_the_reserved_ones_the_records_have():
    recs = [{"b": 1, "sweep.index": 0, "sweep.key": "k"}, {"a": 2, "error": "x"}]
    assert columns(recs) == [*RESERVED_COLUMNS, "b", "a"]
    assert columns([{"b": 1, "error": None}, {"a": 2}]) == ["error", "b", "a"]
    assert columns(iter([{"b": 1}])) == ["b"]  # a plain record: its own columns only


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
    # Lenient (journal, --resume): half a line is skipped; every JSON object is a record.
    assert read_records(path) == [{"sweep.index": 0, "sweep.key": "a"}, {}]
    with pytest.raises(ConfigError, match="line 4: not JSON"):
        read_records(path, strict=True)
    path.write_text(whole + "{}\n[1]\n")
    with pytest.raises(ConfigError, match="line 3: expected a JSON object"):
        read_records(path, strict=True)
    # Strict (simwall plot): any JSON object is a row; .json is read as JSONL.
    json_path = tmp_path / "r.json"
    json_path.write_text(whole + "{}\n")
    assert read_records(json_path, strict=True) == [{"sweep.index": 0, "sweep.key": "a"}, {}]


@pytest.mark.parametrize("strict", [False, True])
def test_missing_file_and_bad_suffix(tmp_path, strict):
    missing = tmp_path / "typo.csv"
    with pytest.raises(ConfigError, match=f"^{missing}: no such file"):
        read_records(missing, strict=strict)
    with pytest.raises(ConfigError, match=f"^{tmp_path}: not a file"):
        read_records(tmp_path, strict=strict)
    # A sweep's own output or journal before its first run: nothing held yet.
    assert read_held_records(missing) == [] and count_entries(missing) == 0
    bad = tmp_path / "r.txt"
    bad.write_text("x\n")
    with pytest.raises(ConfigError, match=f"^{bad}: expected a .csv, .jsonl or .parquet "
                                          f"file, got '.txt'"):
        read_records(bad, strict=strict)


def test_top_level_names_on_first_access(tmp_path):
    # README: simwall.write_records / simwall.read_records, with nothing imported before.
    code = ("import sys, simwall; p = sys.argv[1]; "
            "simwall.write_records(p, [{'sweep.index': 0, 'sweep.key': 'k', 'x': 1.5}]); "
            "print(simwall.read_records(p))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "r.csv")],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[{'sweep.index': 0, 'sweep.key': 'k', 'x': 1.5}]"
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


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_records_from_a_generator_are_all_written(tmp_path, suffix):
    """The column pass once used up a generator: a .csv or .parquet of a header only."""
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    out = tmp_path / f"r{suffix}"
    write_records(out, ({"sweep.index": i, "x": 0.5 * i} for i in range(3)))
    assert read_records(out) == [{"sweep.index": i, "x": 0.5 * i} for i in range(3)]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_a_plain_record_comes_back_as_written(tmp_path, suffix):
    """No sweep.* columns: it is read back whole, without reserved columns added."""
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    rec = api.simulate("gpt2", **{"plan.zero": 1}).to_record()
    out = tmp_path / f"one{suffix}"
    write_records(out, [rec])
    back, = read_records(out)
    assert list(back) == list(rec)
    assert back == rec


@pytest.mark.parametrize("path,records,message", [
    ("x.csv", [{"a": 1}, "oops"], ("records[1]: expected a record (a dict of column -> "
                                   "value), got str 'oops'")),
    ("x.csv", {"a": 1}, "records: expected an iterable of records (dicts), got one dict"),
    ("x.csv", None, "records: expected an iterable of records (dicts), got NoneType"),
    ("x.jsonl", [{1: "a"}], "records[0]: column names must be strings, got int 1"),
    ("x.jsonl", [{"a": object}], ("records[0].a: expected a number, string, bool, None, "
                                  "list or dict, got type")),
    ("x.csv", [{"a": [1, {2}]}], ("records[0].a: expected a number, string, bool, None, "
                                  "list or dict, got set {2}")),
    ("nonexistent_dir/x.csv", [{"a": 1}], ("path: cannot write '{tmp}/nonexistent_dir/x.csv': "
                                           "directory '{tmp}/nonexistent_dir' does not exist")),
    ("x.xlsx", [{"a": 1}], ("path: expected an output ending in .csv, .jsonl or .parquet, got "
                            "'x.xlsx'")),
    (None, [{"a": 1}], ("path: expected a file name (a str or os.PathLike) ending in .csv, "
                        ".jsonl or .parquet, got NoneType None")),
    ({"a": 1}, [{"a": 1}], ("path: expected a file name (a str or os.PathLike) ending in "
                            ".csv, .jsonl or .parquet, got dict {'a': 1}")),
])
def test_bad_write_arguments_are_config_errors_leaving_nothing(tmp_path, path, records,
                                                               message):
    where = tmp_path / path if isinstance(path, str) else path
    with pytest.raises(ConfigError) as err:
        write_records(where, records)
    assert str(err.value).startswith(message.replace("{tmp}", str(tmp_path))), str(err.value)
    assert list(tmp_path.iterdir()) == []  # no x.csv, no x.csv.tmp


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    out = tmp_path / "r.csv"
    write_records(out, [{"a": 1}])
    before = out.read_bytes()

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr("simwall.report.records.write_csv", full_disk)
    with pytest.raises(ConfigError, match=f"^path: cannot write '{out}': No space left"):
        write_records(out, [{"a": 2}])
    assert out.read_bytes() == before and sorted(tmp_path.iterdir()) == [out]


@pytest.mark.parametrize("path", [None, 3, {"a": 1}, ""])
def test_bad_read_argument_is_a_config_error(path):
    with pytest.raises(ConfigError, match="^path: expected a file name"):
        read_records(path)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_numpy_numbers_are_written_as_numbers(tmp_path, suffix):
    np = pytest.importorskip("numpy")
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    out = tmp_path / f"r{suffix}"
    write_records(out, [{"x": np.float64(1e12), "n": np.int64(3), "b": np.bool_(False),
                         "f": np.float32(0.5), "l": np.arange(2)}])
    back, = read_records(out)
    assert back == {"x": 1e12, "n": 3, "b": False, "f": 0.5,
                    "l": [0, 1] if suffix == ".jsonl" else "[0, 1]"}
    assert type(back["n"]) is int and type(back["x"]) is float
    if suffix == ".csv":
        assert out.read_text().splitlines() == ["x,n,b,f,l", '1000000000000.0,3,false,0.5,"[0, 1]"']
