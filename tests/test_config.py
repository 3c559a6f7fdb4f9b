"""Tests of simwall.config: YAML loading, schemas, located errors, --set overrides."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simwall.config import (
    ClusterSpec,
    Workload,
    apply_overrides,
    bundled_names,
    load_cluster,
    load_workload,
    parse_set,
    parse_yaml,
    set_overrides,
    split_key_overrides,
    validate,
)
from simwall.errors import ConfigError

GOOD = """\
name: tiny
model:
  layers: 4
  hidden: 64
  heads: 4
  vocab: 100
  seq_len: 16
training:
  global_batch: 8
plan:
  tp: 2
"""


def write(tmp_path, text: str | bytes, name: str = "w.yaml"):
    p = tmp_path / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text)
    return p


def error_of(fn, *args, **kwargs) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        fn(*args, **kwargs)
    return info.value


def test_good_file_loads_with_defaults(tmp_path):
    w = load_workload(str(write(tmp_path, GOOD)))
    assert isinstance(w, Workload)
    assert (w.model.kv_heads_, w.model.ffn, w.model.head_dim) == (4, 256, 16)
    assert w.plan.dp == "auto" and w.plan.tp == 2
    assert w.training.grad_precision_ == "bf16"
    assert w.line("plan.tp") == 11 and w.line("model.heads") == 5


def test_typed_objects_are_frozen(tmp_path):
    w = load_workload(str(write(tmp_path, GOOD)))
    with pytest.raises(ValueError, match="frozen"):   # pydantic's frozen-instance error
        w.model.layers = 5  # type: ignore[misc]


@pytest.mark.parametrize("edit, key, line, pattern", [
    (("  tp: 2", "  tp: -3"), "plan.tp", 11, r"expected an integer > 0, got -3$"),
    (("  tp: 2", "  tp: 2.5"), "plan.tp", 11, r"expected an integer > 0, got 2.5$"),
    (("  tp: 2", "  tp: '2'"), "plan.tp", 11, r"expected an integer > 0, got '2'$"),
    (("  tp: 2", "  dp: x"), "plan.dp", 11, r"expected an integer > 0 or 'auto', got 'x'$"),
    (("  tp: 2", "  dp: 0"), "plan.dp", 11, r"expected an integer > 0 or 'auto', got 0$"),
    (("  tp: 2", "  zero: 4"), "plan.zero", 11, r"expected an integer from 0 to 3, got 4$"),
    (("  tp: 2", "  tpp: 2"), "plan.tpp", 11, r"unknown key; did you mean 'tp'\?$"),
    (("  layers: 4", "  layrs: 4"), "model.layrs", 3, r"did you mean 'layers'\?$"),
    (("  hidden: 64", "  hidden: .nan"), "model.hidden", 4, r"expected a finite number, got nan"),
    (("  tp: 2", "  schedule: zigzag"), "plan.schedule", 11,
     r"expected one of 'gpipe', '1f1b', 'interleaved', 'zero_bubble', got 'zigzag'$"),
    (("  tp: 2", "  sequence_parallel: 1"), "plan.sequence_parallel", 11,
     r"expected true or false, got 1$"),
    (("  tp: 2", "  stage_layers: [2, x]"), "plan.stage_layers[1]", 11,
     r"expected an integer >= 0, got 'x'$"),
    (("  heads: 4", "  heads: 5"), "model.hidden", 4, r"must be divisible by model.heads \(5\)"),
    (("  seq_len: 16", "  seq_len: 16\n  kv_heads: 3"), "model.kv_heads", 8,
     r"must divide model.heads \(4\), got 3$"),
    (("  vocab: 100\n", ""), "model.vocab", 2, r"required key is missing \(expected an integer > 0\)"),
    (("name: tiny", "name: tiny\nmodle: {}"), "modle", 2, r"did you mean 'model'\?$"),
])
def test_located_errors(tmp_path, edit, key, line, pattern):
    path = write(tmp_path, GOOD.replace(*edit))
    err = error_of(load_workload, str(path))
    assert err.key == key
    assert err.line == line
    assert re.search(pattern, err.message), err.message
    text = str(err)
    assert "\n" not in text and text.startswith(str(path))
    assert "constrained" not in text and "literal[" not in text


def test_error_format_is_file_line_key_message(tmp_path):
    path = write(tmp_path, GOOD.replace("  tp: 2", "  tp: 0"))
    assert str(error_of(load_workload, str(path))) == \
        f"{path}:11: plan.tp: expected an integer > 0, got 0"


@pytest.mark.parametrize("content, pattern, line", [
    ("name: x\nmodel: [1, 2\n", r"invalid YAML", 3),
    ("name: x\nname: y\n", r"name: duplicate key \(first at line 1\)", 2),
    ("", r"empty file, expected a mapping", None),
    ("# only a comment\n", r"empty file", None),
    ("- 1\n- 2\n", r"expected a mapping at the top, got a list", None),
    ("just text\n", r"expected a mapping at the top, got 'just text'", None),
    (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", r"not UTF-8 text", None),
    (b"name: x\n\x00\x01\x02\n", r"not a YAML text file", 2),
    ("a: &a [*a]\n", r"invalid YAML", 1),
])
def test_bad_files(tmp_path, content, pattern, line):
    path = write(tmp_path, content)
    err = error_of(load_workload, str(path))
    assert re.search(pattern, str(err)), str(err)
    assert err.line == line
    assert err.source == str(path)


def test_missing_file_and_unknown_name(tmp_path):
    err = error_of(load_workload, str(tmp_path / "nope.yaml"))
    assert err.message == "no such file" and err.source.endswith("nope.yaml")
    err = error_of(load_workload, "gpt3-175")
    assert "did you mean 'gpt3-175b'" in str(err)
    err = error_of(load_cluster, "dgx-a10")
    assert "did you mean 'dgx-a100'" in str(err)


def test_scientific_notation_reads_as_float():
    assert parse_yaml("a: 3e12\nb: -1E-6\nc: 2.5e+3", "x") == {"a": 3e12, "b": -1e-6, "c": 2500.0}


def test_set_overrides_take_effect():
    w = load_workload("gpt3-175b", [("plan.tp", 4), ("model.layers", 48)])
    assert (w.plan.tp, w.model.layers) == (4, 48)
    c = load_cluster("dgx-a100", [("nodes", 64), ("device.memory_bandwidth", 4e12)])
    assert c.nodes == 64
    assert c.device.base == "A100-SXM4-80GB"
    assert c.device.memory_bandwidth_bytes_per_s == 4e12
    # The what-if device is named after the YAML key that changed, not the field name.
    assert c.device.name == "A100-SXM4-80GB (memory_bandwidth changed)"


def test_set_errors_say_from_set_and_drop_the_line():
    err = error_of(load_workload, "gpt3-175b", [("plan.tp", -3)])
    assert str(err) == ("workloads/gpt3-175b.yaml: plan.tp: expected an integer > 0, got -3 "
                        "(from --set)")
    err = error_of(load_cluster, "dgx-a100", [("device.memory_bandwith", 1e12)])
    assert err.key == "device.memory_bandwith" and "did you mean 'memory_bandwidth'" in str(err)
    err = error_of(load_cluster, "dgx-a100", [("device", 5)])
    assert err.message.startswith("expected a string or a mapping, got 5")
    err = error_of(load_workload, "gpt3-175b", [("name.x", 1)])
    assert err.key == "name" and "not a mapping" in err.message


def test_set_does_not_touch_the_original_document():
    doc = parse_yaml("plan: {tp: 2}\n", "x")
    out = apply_overrides(doc, [("plan.tp", 4)], "x")
    assert doc["plan"]["tp"] == 2 and out["plan"]["tp"] == 4


@pytest.mark.parametrize("item", ["plan.tp", "=4", "plan..tp=4", ".tp=1", "plan.tp=[1"])
def test_bad_set_syntax(item):
    err = error_of(parse_set, item)
    assert "--set" in str(err)


def test_split_overrides_routes_cluster_keys():
    w, c = split_key_overrides(set_overrides(["plan.tp=4", "cluster.nodes=2",
                                              "cluster.device.memory_bandwidth=4e12"]))
    assert w == [("plan.tp", 4)]
    assert c == [("nodes", 2), ("device.memory_bandwidth", 4e12)]


def test_every_bundled_file_validates():
    names = bundled_names("workload")
    assert {"gpt3-175b", "bert-base", "bert-large", "gpt2", "llama2-7b", "llama2-70b",
            "llama3-8b", "llama3-70b", "llama3-405b", "megatron-1t"} <= set(names)
    for name in names:
        w = load_workload(name)
        assert w.name == name and w.source, name
    for name in bundled_names("cluster"):
        assert isinstance(load_cluster(name), ClusterSpec)


def test_shapes_match_the_papers():
    m = load_workload("llama3-405b").model
    assert (m.layers, m.hidden, m.ffn, m.heads, m.kv_heads_, m.seq_len) == \
        (126, 16384, 53248, 128, 8, 8192)
    m = load_workload("llama2-70b").model
    assert (m.layers, m.hidden, m.ffn, m.heads, m.kv_heads_, m.vocab, m.seq_len) == \
        (80, 8192, 28672, 64, 8, 32000, 4096)
    assert m.gated_mlp and m.norm == "rmsnorm" and not m.dropout
    m = load_workload("megatron-1t").model
    assert (m.layers, m.hidden, m.heads) == (128, 25600, 160)
    m = load_workload("bert-large").model
    assert (m.kind, m.layers, m.hidden, m.heads) == ("bert", 24, 1024, 16)


_keys = st.sampled_from(["tp", "pp", "layers", "hidden", "global_batch"])


@settings(deadline=None, derandomize=True, max_examples=60)
@given(value=st.one_of(st.integers(max_value=0), st.floats(allow_nan=True, allow_infinity=True),
                       st.text(max_size=5), st.booleans(), st.none(),
                       st.lists(st.integers(), max_size=2)))
def test_any_bad_positive_size_is_one_located_line(value):
    """Whatever junk a positive-integer key gets, the error names it on one line."""
    if isinstance(value, float) and value.is_integer() and value > 0:
        value = -value
    if isinstance(value, float) and value == 0:
        value = 0.5
    err = error_of(load_workload, "gpt3-175b", [("plan.tp", value)])
    assert err.key == "plan.tp"
    assert err.message.startswith("expected an integer > 0") or \
        err.message.startswith("expected a finite number")
    assert "\n" not in str(err)


@settings(deadline=None, derandomize=True, max_examples=40)
@given(tp=st.integers(1, 64), layers=st.integers(1, 200))
def test_valid_overrides_round_trip(tp, layers):
    w = load_workload("gpt3-175b", [("plan.tp", tp), ("model.layers", layers)])
    assert (w.plan.tp, w.model.layers) == (tp, layers)


def test_validate_rejects_non_mapping_and_none():
    assert "empty" in str(error_of(validate, Workload, None, "s"))
    assert "got 3" in str(error_of(validate, Workload, 3, "s"))
    assert load_workload("gpt3-175b").plan.dp_bucket_bytes is None      # the framework's


@pytest.mark.parametrize("peak, pattern", [
    ("{bf17: 1.0e12}", ("d.yaml:2: peak_flops.bf17: expected one of 'fp32', 'tf32', 'fp16', "
                        "'bf16', 'fp8', got 'bf17'")),
    ("{bf16: true}", "d.yaml:2: peak_flops.bf16: expected a number > 0, got true"),
])
def test_catalog_entry_errors(peak, pattern):
    from simwall.config import DeviceSpec

    doc = parse_yaml(f"name: x\npeak_flops: {peak}\nmemory_capacity: 8.0e10\n"
                     "memory_bandwidth: 2.0e12\n", "d.yaml")
    assert str(error_of(validate, DeviceSpec, doc, "d.yaml")) == pattern


def _with_lines(doc):
    """``doc`` as plain data with every mapping's key lines, to compare two parses."""
    from simwall.config.yamlio import LineDict

    if isinstance(doc, LineDict):
        return ("map", [(k, doc.lines.get(k), _with_lines(v)) for k, v in doc.items()])
    if isinstance(doc, list):
        return ("list", [_with_lines(v) for v in doc])
    return (type(doc).__name__, doc)


@pytest.mark.parametrize("kind", ["devices", "links"])
def test_bundled_catalog_reads_the_same_with_libyaml(kind):
    """The catalog is parsed by libyaml at start-up (bundled=True, 10x faster): the same
    values, types and key lines as the pure-Python loader that reads users' files."""
    from simwall.config import bundled_dir, parse_yaml

    path = bundled_dir("catalog") / f"{kind}.yaml"
    text = path.read_text(encoding="utf-8")
    slow = parse_yaml(text, str(path))
    fast = parse_yaml(text, str(path), bundled=True)
    assert _with_lines(fast) == _with_lines(slow)
    assert len(fast[kind]) > 5 and fast[kind][0].lines          # it did read entries


@pytest.mark.parametrize("kind", ["workload", "cluster"])
def test_bundled_workloads_and_clusters_read_the_same_with_libyaml(kind):
    """A bundled workload or cluster named on the command line is parsed by libyaml too
    (simwall.config.files): every one gives the same values, types and key lines as the
    pure-Python loader, and a path outside the bundle keeps that loader."""
    from simwall.config import bundled_dir, bundled_names, parse_yaml
    from simwall.config.files import _is_bundled, find_file

    names = bundled_names(kind)
    assert len(names) >= 5
    for name in names:
        path = find_file(kind, name)
        assert _is_bundled(kind, path)
        text = path.read_text(encoding="utf-8")
        slow = parse_yaml(text, str(path))
        assert _with_lines(parse_yaml(text, str(path), bundled=True)) == _with_lines(slow)
        assert slow and slow.lines                                 # it did read keys
    outside = Path(str(bundled_dir(kind))) / ".." / bundled_dir(kind).name / f"{names[0]}.yaml"
    assert not _is_bundled(kind, find_file(kind, str(outside)))
