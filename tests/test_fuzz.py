"""Hostile input: every malformed workload, cluster, ``--set`` item or file must end in
exit status 2 with exactly one stderr line ``simwall: error: ...`` naming the file (and
the key where one is at fault), never a traceback.

Bad inputs are made by mutating one key of a small valid workload or cluster to a value
that is wrong for that key (wrong type, out of range, NaN/inf, huge, unknown name), by
adding unknown keys, dropping required ones, and by writing junk files (binary bytes,
random text, deep nesting, empty). ``main`` runs in-process.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import math
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from simwall import cli
from simwall.plan import limits

FUZZ = settings(deadline=None, derandomize=True, max_examples=120,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

BASE_CLUSTER = {
    "name": "fuzz-cluster", "device": "A100-SXM4-80GB", "nodes": 2, "devices_per_node": 4,
    "intra": {"topology": "nvswitch", "link": "NVLink3"},
    "inter": {"topology": "fat_tree", "link": "IB-HDR", "nics_per_node": 4,
              "oversubscription": 1.0, "switch_radix": 40},
    "host": {"link": "PCIe4", "memory_capacity": 2.0e12},
}
BASE_WORKLOAD = {
    "name": "fuzz",
    "model": {"kind": "gpt", "layers": 4, "hidden": 256, "heads": 4, "vocab": 1000,
              "seq_len": 128},
    "training": {"global_batch": 16, "micro_batch": 2, "precision": "bf16",
                 "optimizer": "adam"},
    "plan": {"tp": 2, "pp": 2, "dp": "auto", "zero": 0, "schedule": "1f1b"},
    "defaults": {"cluster": "single-node"},
}

_counter = itertools.count()


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``cli.main(argv)`` in-process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(argv)
    return rc, out.getvalue(), err.getvalue()


def assert_one_line_error(argv: list[str], names: tuple[str, ...] = (),
                          key: str | None = None) -> str:
    """Run ``argv``; check the one-line error contract; return the message."""
    rc, out, err = run_cli(argv)
    assert "Traceback" not in err, err
    assert rc == 2, f"{argv}: exit {rc}, stderr {err!r}"
    lines = err.splitlines()
    assert len(lines) == 1, f"{argv}: expected one stderr line, got {lines!r}"
    line = lines[0]
    assert line.startswith("simwall: error: "), line
    assert out == "", f"{argv}: printed {out[:200]!r} on stdout as well"
    if names:
        assert any(n in line for n in names), f"{argv}: {line!r} names none of {names}"
    if key is not None:
        assert key in line, f"{argv}: {line!r} does not name key {key!r}"
    return line


def _write(folder: Path, doc_or_text, stem: str = "bad") -> Path:
    path = folder / f"{stem}{next(_counter)}.yaml"
    if isinstance(doc_or_text, bytes):
        path.write_bytes(doc_or_text)
    elif isinstance(doc_or_text, str):
        path.write_text(doc_or_text, encoding="utf-8")
    else:
        path.write_text(yaml.safe_dump(doc_or_text, allow_unicode=True, sort_keys=False),
                        encoding="utf-8")
    return path


def _set_in(doc: dict, path: tuple, value) -> dict:
    import copy

    out = copy.deepcopy(doc)
    node = out
    for k in path[:-1]:
        if isinstance(node.get(k), str):  # a catalog name: ``{base: name}`` to edit a field
            node[k] = {"base": node[k]}
        node = node.setdefault(k, {})
    node[path[-1]] = value
    return out


def _drop(doc: dict, path: tuple) -> dict:
    import copy

    out = copy.deepcopy(doc)
    node = out
    for k in path[:-1]:
        node = node[k]
    del node[path[-1]]
    return out


# ---------------------------------------------------------------------------------------
# Bad values. Each strategy yields values that are wrong for one kind of key, whatever
# else the document says; ``schema`` says whether the schema itself rejects them (then
# the error must name the key).

junk_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)),
                    min_size=1, max_size=30)
not_a_number = st.one_of(
    st.booleans(), st.none(), junk_text, st.lists(st.integers(), max_size=3),
    st.dictionaries(st.sampled_from(["a", "x"]), st.integers(), max_size=2))
non_finite = st.sampled_from([math.nan, math.inf, -math.inf])
huge_int = st.one_of(st.integers(10 ** 9, 10 ** 30), st.just(2 ** 63), st.just(10 ** 4000))


def bad_pos_int(limit: int | None = None, optional: bool = False):
    """(value, schema-rejected) for a positive-integer key (``optional``: null is valid)."""
    schema = st.one_of(st.integers(-10 ** 12, 0), st.floats(allow_nan=True), non_finite,
                       not_a_number).map(lambda v: (v, True))
    if optional:
        schema = schema.filter(lambda v: v[0] is not None)
    if limit is None:
        return schema
    return st.one_of(schema, st.integers(limit + 1, 10 ** 40).map(lambda v: (v, False)))


def bad_literal(valid: tuple):
    return st.one_of(junk_text.filter(lambda s: s not in valid), st.integers(), st.none(),
                     st.floats(allow_nan=True), st.lists(junk_text, max_size=2)
                     ).map(lambda v: (v, True))


bad_bool = st.one_of(st.integers(), st.floats(allow_nan=True), junk_text, st.none()
                     ).map(lambda v: (v, True))
bad_pos_float = st.one_of(st.floats(max_value=0.0), non_finite, not_a_number,
                          st.integers(-10 ** 6, 0)).map(lambda v: (v, True))
bad_fraction = st.one_of(st.floats(max_value=0.0), st.floats(min_value=1.0001, max_value=1e300),
                         non_finite, not_a_number).map(lambda v: (v, True))

WORKLOAD_KEYS = {
    ("model", "layers"): bad_pos_int(limits.MAX_LAYERS),
    ("model", "hidden"): bad_pos_int(limits.MAX_MODEL_DIM),
    ("model", "heads"): bad_pos_int(limits.MAX_MODEL_DIM),
    ("model", "kv_heads"): bad_pos_int(limits.MAX_MODEL_DIM, optional=True),
    ("model", "ffn_hidden"): bad_pos_int(limits.MAX_MODEL_DIM, optional=True),
    ("model", "vocab"): bad_pos_int(limits.MAX_MODEL_DIM),
    ("model", "seq_len"): bad_pos_int(limits.MAX_MODEL_DIM),
    ("model", "kind"): bad_literal(("gpt", "bert")),
    ("model", "norm"): bad_literal(("layernorm", "rmsnorm")),
    ("model", "gated_mlp"): bad_bool,
    ("model", "dropout"): bad_bool,
    ("training", "global_batch"): bad_pos_int(limits.MAX_BATCH_SEQUENCES),
    ("training", "micro_batch"): bad_pos_int(limits.MAX_BATCH_SEQUENCES),
    ("training", "precision"): bad_literal(("fp32", "fp16", "bf16", "fp8")),
    ("training", "optimizer"): bad_literal(("adam", "adamw", "sgd", "adafactor", "shampoo")),
    ("training", "master_weights"): bad_bool,
    ("plan", "tp"): st.one_of(bad_pos_int(), huge_int.map(lambda v: (v, False))),
    ("plan", "pp"): st.one_of(bad_pos_int(), huge_int.map(lambda v: (v, False))),
    ("plan", "dp"): st.one_of(bad_pos_int(), huge_int.map(lambda v: (v, False)),
                              junk_text.filter(lambda s: s != "auto").map(lambda v: (v, True))),
    ("plan", "virtual_stages"): st.one_of(bad_pos_int(), huge_int.map(lambda v: (v, False))),
    ("plan", "zero"): st.one_of(st.integers(4, 10 ** 6), st.integers(-10 ** 6, -1),
                                not_a_number, st.floats(allow_nan=True)).map(lambda v: (v, True)),
    ("plan", "recompute"): bad_literal(("none", "selective", "full")),
    ("plan", "schedule"): bad_literal(("gpipe", "1f1b", "interleaved")),
    ("plan", "collective"): bad_literal(("auto", "ring", "tree", "hierarchical")),
    ("plan", "offload"): bad_literal(("none", "optimizer", "optimizer+params")),
    ("plan", "sequence_parallel"): bad_bool,
    ("plan", "dp_overlap"): bad_bool,
    ("plan", "dp_bucket_bytes"): st.one_of(
        bad_pos_float, st.floats(min_value=1e-300, max_value=1e-3).map(lambda v: (v, False))),
    ("plan", "stage_layers"): st.one_of(
        st.lists(st.integers(-5, 10), min_size=0, max_size=5).filter(
            lambda xs: not (len(xs) == 2 and min(xs) >= 1 and sum(xs) == 4)
        ).map(lambda v: (v, False)),
        not_a_number.map(lambda v: (v, True))),
    ("defaults", "cluster"): st.one_of(
        junk_text.filter(lambda s: s.strip() and s not in ("dgx-a100", "dgx-h100",
                                                           "single-node", "tpu-v4")
                         ).map(lambda v: (v, False)),
        st.integers().map(lambda v: (v, True))),
    ("defaults", "devices"): st.one_of(
        bad_pos_int(optional=True), st.integers(limits.MAX_DEVICES + 1, 10 ** 30).map(lambda v: (v, False))),
    ("name",): st.one_of(st.integers(), st.none(), st.lists(st.integers(), max_size=2)
                         ).map(lambda v: (v, True)),
}

CLUSTER_KEYS = {
    ("nodes",): st.one_of(
        bad_pos_int(), st.integers(limits.MAX_DEVICES + 1, 10 ** 30).map(lambda v: (v, False)),
        junk_text.filter(lambda s: s != "auto").map(lambda v: (v, True))),
    ("devices_per_node",): st.one_of(
        bad_pos_int(), st.integers(limits.MAX_DEVICES + 1, 10 ** 30).map(lambda v: (v, False))),
    ("device",): st.one_of(
        junk_text.map(lambda v: (v, False)), st.integers().map(lambda v: (v, True)),
        st.builds(lambda s: {"base": s}, junk_text).map(lambda v: (v, False))),
    ("intra", "topology"): bad_literal(("nvswitch", "mesh", "ring", "torus", "none")),
    ("intra", "link"): st.one_of(junk_text.map(lambda v: (v, False)),
                                 st.integers().map(lambda v: (v, True))),
    ("inter", "topology"): bad_literal(("fat_tree", "torus", "ring", "none")),
    ("inter", "link"): st.one_of(junk_text.map(lambda v: (v, False)),
                                 st.builds(lambda b: {"base": "IB-HDR", "bandwidth": b},
                                           bad_pos_float.map(lambda x: x[0])
                                           ).map(lambda v: (v, False))),
    ("inter", "nics_per_node"): st.one_of(
        bad_pos_int(), st.integers(limits.MAX_NICS_PER_NODE + 1, 10 ** 30
                                   ).map(lambda v: (v, False))),
    ("inter", "oversubscription"): st.one_of(
        st.floats(max_value=0.999), non_finite, not_a_number).map(lambda v: (v, True)),
    ("inter", "switch_radix"): bad_pos_int(),
    ("inter", "rail_optimized"): bad_bool,
    ("host", "memory_capacity"): bad_pos_float,
    ("host", "link"): st.one_of(junk_text.map(lambda v: (v, False)),
                                st.integers().map(lambda v: (v, True))),
    ("device", "peak_flops"): st.one_of(
        st.dictionaries(st.sampled_from(["bf16", "fp16"]), bad_pos_float.map(lambda x: x[0]),
                        min_size=1, max_size=2),
        st.dictionaries(junk_text.filter(lambda s: s not in ("fp32", "tf32", "fp16", "bf16",
                                                             "fp8")),
                        st.floats(1e12, 1e15), min_size=1, max_size=2),
        not_a_number.filter(lambda v: v is not None and (not isinstance(v, dict) or v))
    ).map(lambda v: (v, False)),
    ("device", "memory_bandwidth"): bad_pos_float.filter(lambda x: x[0] is not None
                                                          ).map(lambda x: (x[0], False)),
    ("faults", "stragglers"): st.one_of(
        st.builds(lambda d, s: [{"device": d, "slowdown": s}], st.integers(8, 10 ** 12),
                  st.floats(0.1, 1.0)),
        st.builds(lambda d, s: [{"device": d, "slowdown": s}], st.integers(0, 7),
                  st.one_of(bad_fraction.map(lambda x: x[0]))),
        st.builds(lambda d: [{"device": d, "slowdown": 0.5}], st.integers(max_value=-1)),
        st.builds(lambda k: [{"device": 0, "slowdown": 0.5, k: 1}],
                  junk_text.filter(lambda s: s not in ("device", "slowdown"))),
        not_a_number.filter(lambda v: v is not None and v != [])).map(lambda v: (v, False)),
    ("faults", "links"): st.one_of(
        st.builds(lambda a, b, f: [{"between": [a, b], "bandwidth_factor": f}],
                  st.sampled_from(["dev0", "nic0.0", "nvsw0", "spine", "host0"]),
                  st.one_of(junk_text, st.sampled_from(["dev99", "nic9.9", "leaf99.0"])),
                  st.floats(0.0, 1.0)),
        st.builds(lambda f: [{"between": ["dev0", "nvsw0"], "bandwidth_factor": f}],
                  bad_fraction.map(lambda x: x[0]).filter(
                      lambda x: not (isinstance(x, float) and 0 <= x <= 1))),
        st.builds(lambda xs: [{"between": xs, "bandwidth_factor": 0.5}],
                  st.lists(st.sampled_from(["dev0", "nvsw0", "dev1"]), max_size=4).filter(
                      lambda xs: len(xs) != 2)),
        # Cutting every link of dev3 disconnects it.
        st.just([{"between": ["dev3", "nvsw0"], "bandwidth_factor": 0.0},
                 {"between": ["dev3", "nic0.3"], "bandwidth_factor": 0.0}]),
    ).map(lambda v: (v, False)),
    ("name",): st.one_of(st.integers(), st.none()).map(lambda v: (v, True)),
}


@pytest.fixture(scope="module")
def folder():
    with tempfile.TemporaryDirectory(prefix="simwall-fuzz-") as d:
        yield Path(d)


@pytest.fixture(scope="module")
def good_files(folder):
    """A valid workload and cluster (both must run: the fuzz tests start from them)."""
    cluster = _write(folder, BASE_CLUSTER, "good-cluster")
    workload = _write(folder, _set_in(BASE_WORKLOAD, ("defaults", "cluster"), str(cluster)),
                      "good-workload")
    return workload, cluster


def test_base_files_are_valid(good_files):
    workload, cluster = good_files
    for argv in (["run", str(workload)], ["show", str(workload)], ["topo", str(cluster)],
                 ["show", str(cluster)], ["run", str(workload), "--cluster", str(cluster)]):
        rc, out, err = run_cli(argv)
        assert (rc, err) == (0, ""), (argv, err)
        assert out


def _expected_key(path: tuple, schema: bool) -> str | None:
    return ".".join(path) if schema else None


@FUZZ
@given(data=st.data(), which=st.sampled_from(sorted(WORKLOAD_KEYS)),
       command=st.sampled_from(["run", "show"]))
def test_bad_workload_value(folder, good_files, data, which, command):
    value, schema = data.draw(WORKLOAD_KEYS[which], label="value")
    path = _write(folder, _set_in(BASE_WORKLOAD, which, value))
    names = (path.name,)
    argv = [command, str(path)]
    if which == ("defaults", "cluster") and not schema:
        names += ("defaults.cluster", "cluster")
    assert_one_line_error(argv, names, _expected_key(which, schema))


@FUZZ
@given(data=st.data(), which=st.sampled_from(sorted(CLUSTER_KEYS)),
       command=st.sampled_from(["run", "show", "topo"]))
def test_bad_cluster_value(folder, good_files, data, which, command):
    # Fault links name graph nodes: checked when the graph is built (run, topo), not by show.
    assume(not (which == ("faults", "links") and command == "show"))
    value, schema = data.draw(CLUSTER_KEYS[which], label="value")
    path = _write(folder, _set_in(BASE_CLUSTER, which, value))
    workload, _ = good_files
    argv = (["run", str(workload), "--cluster", str(path)] if command == "run"
            else [command, str(path)])
    assert_one_line_error(argv, (path.name,), _expected_key(which, schema))


def _all_paths(doc: dict, prefix: tuple = ()) -> list[tuple]:
    out = []
    for k, v in doc.items():
        out.append(prefix + (k,))
        if isinstance(v, dict):
            out.extend(_all_paths(v, prefix + (k,)))
    return out


REQUIRED = [("name",), ("model",), ("training",), ("model", "layers"), ("model", "hidden"),
            ("model", "heads"), ("model", "vocab"), ("model", "seq_len"),
            ("training", "global_batch")]


@FUZZ
@given(where=st.sampled_from(sorted({p[:-1] for p in _all_paths(BASE_WORKLOAD)})),
       key=junk_text, value=st.one_of(st.integers(), junk_text, st.none()),
       drop=st.sampled_from(REQUIRED + [None]), command=st.sampled_from(["run", "show"]))
def test_unknown_or_missing_workload_keys(folder, where, key, value, drop, command):
    node = BASE_WORKLOAD
    for k in where:
        node = node[k]
    assume(key not in node)
    doc = _set_in(BASE_WORKLOAD, where + (key,), value)
    if drop is not None:
        doc = _drop(doc, drop)
    path = _write(folder, doc)
    assert_one_line_error([command, str(path)], (path.name,))


BAD_SETS = st.one_of(
    # syntax
    st.sampled_from(["plan.tp", "=4", ".tp=4", "plan..tp=4", "plan.tp.=1", "plan.tp=[1,",
                     "plan.tp={", "plan.tp=: :", "plan.tp=\x00", "plan.tp=!!python/object x",
                     "model.layers.x=1", "training.global_batch.y.z=3"]),
    # unknown keys
    st.builds(lambda k: f"plan.{k}=1", junk_text.filter(
        lambda s: "=" not in s and "." not in s and s.strip() and s not in
        BASE_WORKLOAD["plan"] and s not in {"virtual_stages", "sequence_parallel",
                                            "stage_layers", "collective", "dp_bucket_bytes",
                                            "dp_overlap", "pp_scatter_gather", "offload",
                                            "recompute"})),
    # bad values
    st.builds(lambda k, v: f"{k}={v}",
              st.sampled_from(["plan.tp", "plan.pp", "model.layers", "model.hidden",
                               "training.global_batch", "training.micro_batch",
                               "cluster.nodes", "cluster.devices_per_node"]),
              st.sampled_from(["-1", "0", "abc", "1.5", ".nan", ".inf", "[1, 2]", "{a: 1}",
                               "true", "null", "10000000000", "1e300", "''", "ü"])),
    st.sampled_from([
        "cluster.faults.stragglers=[{device: 3, slowdown: 0}]",
        "cluster.faults.stragglers=[{device: 3, slowdown: .nan}]",
        "cluster.faults.stragglers=[{device: 3, slowdown: 2}]",
        "cluster.faults.stragglers=[{device: 3}]",
        "cluster.faults.stragglers=3",
        "cluster.faults.links=[{between: [dev0], bandwidth_factor: 0.5}]",
        "cluster.device.peak_flops.bf16=-1",
        "cluster.device.memory_bandwidth=.inf",
        "cluster.inter.link.bandwidth=0",
        "plan.dp_bucket_bytes=1e-300",
        "model.layers=10000000",
        "cluster.nodes=1000000000",
        "defaults.devices=1000000000",
        "training.global_batch=16777216",
    ]),
)


#: Caught only when the topology is built or the plan is known, so by ``run`` (``show``
#: prints the resolved configuration without building the graph).
RUN_ONLY_ITEMS = [
    "cluster.faults.stragglers=[{device: 99, slowdown: 0.5}]",
    "cluster.faults.links=[{between: [dev0, nowhere], bandwidth_factor: 0.5}]",
    "cluster.faults.links=[{between: [dev0, dev5], bandwidth_factor: 0.5}]",
    ("cluster.faults.links=[{between: [dev3, nvsw0], bandwidth_factor: 0}, "
     "{between: [dev3, nic0.3], bandwidth_factor: 0}]"),
    "cluster.device=NoSuchGPU",
    "cluster.intra.link=NoSuchLink",
    "cluster.host.link=NoSuchLink",
]


@FUZZ
@given(items=st.lists(st.one_of(BAD_SETS, st.sampled_from(RUN_ONLY_ITEMS)), min_size=1, max_size=2),
       command=st.sampled_from(["run", "show"]))
def test_bad_set_items(good_files, items, command):
    workload, cluster = good_files
    if command == "show":
        items = [i for i in items if i not in RUN_ONLY_ITEMS]
        assume(items)
    argv = [command, str(workload), "--cluster", str(cluster)]
    for item in items:
        argv += ["--set", item]
    assert_one_line_error(argv, (workload.name, cluster.name, "--set"))


def _nested(depth: int, kind: str) -> str:
    if kind == "list":
        return "[" * depth + "]" * depth
    if kind == "map":
        return "{a: " * depth + "1" + "}" * depth
    return "".join("  " * i + f"k{i}:\n" for i in range(depth))


JUNK_FILES = st.one_of(
    st.binary(min_size=0, max_size=200),
    st.text(max_size=200),
    # Shallow here (hypothesis tries many); the deep ones are a parametrized test below.
    st.builds(_nested, st.integers(1, 60), st.sampled_from(["list", "map", "block"])),
    st.builds(lambda d, k: f"name: x\nnodes: {_nested(d, k)}\n", st.integers(1, 60),
              st.sampled_from(["list", "map"])),
    st.sampled_from(["", "\n", "# only a comment\n", "---\n...\n", "- 1\n- 2\n", "3\n",
                     "'a string'\n", "name: x\nname: y\n", "? [a, b]\n: 1\n",
                     "name: x\ndevice: &a {base: *a}\n", "a: *undefined\n",
                     "nodes: " + "9" * 5000 + "\n", "\ufeffname: [\n",
                     "model: !!binary aGVsbG8=\n", "<<: 3\n", "\t- tab\n"]),
)


@FUZZ
@given(content=JUNK_FILES, command=st.sampled_from(["run", "show", "topo"]))
def test_junk_files(folder, content, command):
    if isinstance(content, str):
        # A junk text that happens to be a valid cluster (just ``name: x``) is fine.
        try:
            doc = yaml.safe_load(content)
        except Exception:  # noqa: BLE001 - unparsable is exactly what we want
            doc = None
        assume(not (isinstance(doc, dict) and set(doc) <= {"name"} and command != "run"))
    path = _write(folder, content)
    assert_one_line_error([command, str(path)], (path.name,))


@pytest.mark.parametrize("what,argv_of", [
    # 10^9 devices, by explicit node count and by the workload's device count
    ("cluster", lambda w, c: ["topo", c, "--set", "nodes=125000000"]),
    ("cluster", lambda w, c: ["run", w, "--cluster", c, "--set", "cluster.nodes=125000000"]),
    ("cluster", lambda w, c: ["run", w, "--cluster", c, "--set",
                              "cluster.devices_per_node=1000000000"]),
    ("workload", lambda w, c: ["run", w, "--set", "defaults.devices=1000000000", "--set",
                               "defaults.cluster=dgx-a100", "--set",
                               "training.global_batch=2000000000"]),
    # 10^7 layers
    ("workload", lambda w, c: ["run", w, "--set", "model.layers=10000000"]),
    ("workload", lambda w, c: ["show", w, "--set", "model.layers=10000000"]),
    # a global batch giving 10^9 micro-batches, and one inside the batch limit that
    # still asks the engine for millions of tasks
    ("workload", lambda w, c: ["run", w, "--set", "training.global_batch=2000000000",
                               "--set", "training.micro_batch=1"]),
    ("workload", lambda w, c: ["run", w, "--set", "training.global_batch=16777216",
                               "--set", "training.micro_batch=1"]),
    # a billion gradient buckets
    ("workload", lambda w, c: ["run", w, "--cluster", c, "--set", "plan.dp_bucket_bytes=1e-3"]),
    # 10^9 NICs per node
    ("cluster", lambda w, c: ["topo", c, "--set", "inter.nics_per_node=1000000000"]),
])
def test_sizes_beyond_any_cluster_are_refused_by_a_limit(good_files, what, argv_of):
    workload, cluster = good_files
    line = assert_one_line_error(argv_of(str(workload), str(cluster)),
                                 (workload.name, cluster.name))
    assert "limit" in line


def test_limits_leave_real_runs_alone():
    """The bundled (published) workloads resolve on their default clusters."""
    from simwall.api import prepare
    from simwall.config import bundled_names

    for name in bundled_names("workload"):
        prepare(name)  # would raise ConfigError if a limit were too tight


@pytest.mark.parametrize("kind", ["list", "map", "block"])
def test_deeply_nested_files(folder, kind):
    """Thousands of nesting levels: a located error, not a RecursionError traceback."""
    path = _write(folder, _nested(5000, kind))
    assert_one_line_error(["run", str(path)], (path.name,))
    path = _write(folder, f"name: x\nnodes: {_nested(3000, 'list' if kind == 'block' else kind)}\n")
    assert_one_line_error(["topo", str(path)], (path.name,))


# ---------------------------------------------------------------------------------------
# Hostile files and command lines of issue 17's kinds. Every one keeps the contract: exit
# status 0, 1 or 2, no traceback, and on 2 exactly one stderr line ``simwall: error: ...``
# that is safe to print (no control character reaches the terminal). Each kind also
# checks what issue 17 asked of it (the float shown as written, JSON without NaN ...).


#: Control and format characters that must never reach a terminal raw (ESC sequences,
#: bell, backspace, carriage return, NUL, bidi overrides) and a lone surrogate.
control_text = st.lists(st.one_of(
    st.sampled_from(["\x1b[2J", "\x1b]0;pwned\x07", "\x07", "\x08", "\r", "\x00", "\x7f",
                     "\u202e", "\u200b", "\x9b", "\ud800"]),
    st.characters(categories=("Cc", "Cf")), st.sampled_from(["a", "b", "_"])),
    min_size=1, max_size=6).map("".join).filter(lambda s: not s.isprintable())

INT_KEYS = [("model", "layers"), ("model", "hidden"), ("model", "heads"), ("model", "vocab"),
            ("model", "seq_len"), ("training", "global_batch"), ("training", "micro_batch"),
            ("plan", "tp"), ("plan", "pp")]
EXTREME = st.sampled_from([1e-300, 5e-324, 1e-200, 1e300, 1.7976931348623157e308])
DEVICE_NUMBERS = ["cluster.device.peak_flops.bf16", "cluster.device.memory_bandwidth",
                  "cluster.device.memory_capacity", "cluster.intra.link.bandwidth",
                  "cluster.inter.link.bandwidth", "cluster.intra.link.latency"]


def _hostile(kind: str):
    """Strategy of (kind, payload) for one hostile kind."""
    payloads = {
        "control-key-in-file": st.tuples(
            st.sampled_from([(), ("model",), ("plan",), ("training",)]), control_text),
        "control-key-in-set": control_text.filter(lambda s: "=" not in s),
        "control-value-in-set": st.tuples(st.sampled_from(["plan.schedule", "model.kind",
                                                           "defaults.cluster"]),
                                          control_text),
        "float-for-int": st.tuples(st.sampled_from(INT_KEYS), st.integers(1, 10 ** 6)),
        "extreme-number": st.tuples(st.sampled_from(DEVICE_NUMBERS), EXTREME),
        "non-finite-set": st.tuples(st.sampled_from(DEVICE_NUMBERS + [
            "model.layers", "plan.dp_bucket_bytes", "training.global_batch"]),
            st.sampled_from([".nan", ".inf", "-.inf", ".NaN"])),
        "bad-set-key": junk_text.filter(lambda s: "=" not in s),
        "binary-file": st.tuples(st.sampled_from(["run", "show", "topo", "sweep", "check",
                                                  "plan"]),
                                 # ends in bytes no text file has
                                 st.binary(max_size=120).map(lambda b: b + b"\xff\x00")),
        "trace-under-file": st.just(None),
        "sweep-output-under-file": st.just(None),
        "set-whole-section": st.sampled_from(["cluster=foo", "workload=foo", "model=3",
                                              "plan=[1]"]),
        "sweep-unknown-grid-key": st.sampled_from(["plan.tpp", "model.layer", "cluster.node"]),
    }
    return st.tuples(st.just(kind), payloads[kind])


HOSTILE_KINDS = ["control-key-in-file", "control-key-in-set", "control-value-in-set",
                 "float-for-int", "extreme-number", "non-finite-set", "bad-set-key",
                 "binary-file", "trace-under-file", "sweep-output-under-file",
                 "set-whole-section", "sweep-unknown-grid-key"]
HOSTILE = st.sampled_from(list(HOSTILE_KINDS)).flatmap(_hostile)


def _hostile_argv(folder: Path, good_files, kind: str, payload) -> list[str]:
    workload, cluster = (str(p) for p in good_files)
    base = ["run", workload, "--cluster", cluster]
    if kind == "control-key-in-file":
        where, key = payload
        return ["run", str(_write(folder, _set_in(BASE_WORKLOAD, where + (key,), 1)))]
    if kind == "control-key-in-set":
        return base + ["--set", f"plan.{payload}=1"]
    if kind == "control-value-in-set":
        key, value = payload
        return base + ["--set", f"{key}={json_quote(value)}"]
    if kind == "float-for-int":
        where, n = payload
        return ["run", str(_write(folder, _set_in(BASE_WORKLOAD, where, float(n))))]
    if kind == "extreme-number":
        key, value = payload
        return base + ["--format", "json", "--set", f"{key}={value!r}"]
    if kind == "non-finite-set":
        key, value = payload
        return base + ["--format", "json", "--set", f"{key}={value}"]
    if kind == "bad-set-key":
        return base + ["--set", f"{payload}=1"]
    if kind == "binary-file":
        command, data = payload
        path = _write(folder, data)
        return {"sweep": ["sweep", str(path), "-o", str(folder / "out.jsonl"),
                          "--executor", "serial"],
                "check": ["check", str(path)], "plan": ["plan", str(path)]}.get(
            command, [command, str(path)])
    if kind == "trace-under-file":
        return base + ["--trace", str(Path(workload) / "trace.json")]
    if kind == "sweep-output-under-file":
        spec = _write(folder, {"workload": workload, "cluster": cluster,
                               "grid": {"plan.zero": [0, 1]}})
        return ["sweep", str(spec), "-o", str(Path(workload) / "out.csv"),
                "--executor", "serial"]
    if kind == "set-whole-section":
        return base + ["--set", payload]
    if kind == "sweep-unknown-grid-key":
        spec = _write(folder, {"workload": workload, "cluster": cluster,
                               "grid": {payload: [1, 2]}})
        return ["sweep", str(spec), "-o", str(folder / "grid.jsonl"), "--executor", "serial"]
    raise AssertionError(kind)


def json_quote(text: str) -> str:
    """``text`` as a YAML double-quoted scalar (JSON escapes are YAML escapes)."""
    return json.dumps(text)


def _strict_json(text: str):
    def refuse(name: str):
        raise AssertionError(f"{name} in JSON output")
    return json.loads(text, parse_constant=refuse)


@settings(FUZZ, max_examples=80)
@given(case=HOSTILE)
def test_hostile_inputs_keep_the_contract(folder, good_files, case):
    kind, payload = case
    event(kind)
    argv = _hostile_argv(folder, good_files, kind, payload)
    rc, out, err = run_cli(argv)
    assert "Traceback" not in err, err
    assert rc in (0, 1, 2), (argv, rc, err)
    if rc == 2:
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("simwall: error: "), (argv, lines)
        assert lines[0].isprintable(), f"unescaped control character: {lines[0]!r}"
        assert out == "", (argv, out[:200])
    if kind in ("control-key-in-file", "control-key-in-set", "float-for-int",
                "non-finite-set", "binary-file", "trace-under-file",
                "sweep-output-under-file", "set-whole-section", "sweep-unknown-grid-key"):
        assert rc == 2, (argv, rc, out[:200], err)
    if kind == "float-for-int":  # the float as written, not rounded to an integer
        assert f"got {payload[1]}.0" in err, err
    if kind == "extreme-number" and rc == 0:  # honest JSON or nothing
        _strict_json(out)
    if kind == "extreme-number" and rc == 2:
        assert payload[0] in err or "non-finite" in err or "limit" in err, err


def test_non_finite_result_is_refused_naming_the_input(good_files):
    """A device so slow the step time overflows: exit 2 naming the key, no Infinity."""
    workload, cluster = good_files
    for fmt in ("json", "table"):
        line = assert_one_line_error(["run", str(workload), "--cluster", str(cluster),
                                      "--format", fmt, "--set",
                                      "cluster.device.peak_flops.bf16=1e-300"])
        assert "cluster.device.peak_flops.bf16 = 1e-300 gives a non-finite step time" in line


def test_sweep_point_with_a_non_finite_result_is_an_error_record(folder, good_files):
    workload, cluster = good_files
    spec = _write(folder, {"workload": str(workload), "cluster": str(cluster),
                           "grid": {"cluster.device.peak_flops.bf16": [1e-300, 3.12e14]}})
    out = folder / "nonfinite.jsonl"
    rc, _, err = run_cli(["sweep", str(spec), "-o", str(out), "--executor", "serial",
                          "--quiet"])
    assert rc == 0, err
    records = [_strict_json(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["error"] is not None for r in records] == [True, False]
    assert "non-finite" in records[0]["error"]
