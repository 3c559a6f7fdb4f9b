"""Size limits checked where input is read (simwall/config/limits.py and the sweep's point
limits): YAML values with aliases expanded in every YAML simwall reads, list lengths in
the schema, total sweep points, unknown sweep keys. Each case is one located ConfigError
(exit status 2 from the CLI) that names the key and the limit. No test here asserts
wall-clock time: the alias bombs would exhaust memory if anything expanded them."""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path

import pytest

import simwall.studies.sweeps as sw
from simwall.cli import main
from simwall.config import load_cluster, load_workload, load_yaml, parse_set
from simwall.config.limits import (
    MAX_DEGRADED_LINKS,
    MAX_DEVICES,
    MAX_LAYERS,
    MAX_TORUS_DIMS,
    MAX_YAML_VALUES,
)
from simwall.errors import ConfigError
from simwall.model.limits import min_bucket_bytes
from simwall.plan.limits import MAX_DP_BUCKETS
from simwall.studies.sweeps import MAX_SWEEP_POINTS, expand, load_sweep, sweep, sweep_points
from simwall.studies.validate import load_cases


def bomb(indent: str = "  ", levels: int = 9) -> str:
    """A billion-laughs block: ``a`` holds 10 strings, each next anchor 10 of the one
    before, so the last of ``levels`` expands to 10^levels values."""
    names = "abcdefghijklmnop"[:levels]
    lines = [f"{names[0]}: &{names[0]} [" + ", ".join(["lol"] * 10) + "]"]
    for prev, name in itertools.pairwise(names):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    return "".join(f"{indent}{line}\n" for line in lines)


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def error_of(fn, *args, **kwargs) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        fn(*args, **kwargs)
    return info.value


def assert_alias_limit(err: ConfigError, path: Path, key: str) -> None:
    """One located line naming ``key`` (a regex: which anchor of the bomb passes the
    limit first depends on the limit) and the limit."""
    text = str(err)
    assert text.startswith(f"{path}:"), text
    assert re.search(f"^{re.escape(str(path))}:\\d+: {key}: more than "
                     f"{MAX_YAML_VALUES:,} YAML values once aliases", text), text
    assert "\n" not in text


def cli(capsys, *argv: str) -> str:
    """Run the CLI in-process; it must fail with exit status 2 and one line."""
    code = main(list(argv))
    _, err = capsys.readouterr()
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("simwall: error: "), err
    assert "Traceback" not in err
    return lines[0]


# ---------------------------------------------------------------------------------------
# YAML values, aliases expanded: one loader, every file kind


def test_alias_bomb_in_a_workload_is_refused_by_the_loader(tmp_path):
    path = write(tmp_path, "w.yaml", "name: x\nbomb:\n" + bomb("  "))
    assert_alias_limit(error_of(load_yaml, path), path, r"bomb\.[a-i]")
    assert_alias_limit(error_of(load_workload, str(path)), path, r"bomb\.[a-i]")


def test_alias_bomb_in_a_cluster(tmp_path):
    path = write(tmp_path, "c.yaml", "name: x\nfaults:\n" + bomb("  "))
    assert_alias_limit(error_of(load_cluster, str(path)), path, r"faults\.[a-i]")


@pytest.mark.parametrize("section", ["grid", "set", "zip"])
def test_alias_bomb_inside_a_sweep_file(tmp_path, capsys, section):
    """The bomb the issue found: inside a sweep file's grid or set it used to be expanded
    (memory past 1.5 GB) instead of refused."""
    path = write(tmp_path, "s.yaml", f"workload: gpt2\n{section}:\n" + bomb("  "))
    assert_alias_limit(error_of(load_sweep, path), path, section + r"\.[a-i]")
    line = cli(capsys, "sweep", str(path), "-o", str(tmp_path / "out.jsonl"))
    assert f"{MAX_YAML_VALUES:,}" in line and f"{section}." in line
    assert not (tmp_path / "out.jsonl").exists()


def test_alias_bomb_as_one_value_of_a_sweep_set(tmp_path):
    """Anchors in one file, the bomb used as the value of a real key."""
    text = "workload: gpt2\nset:\n" + "".join(
        f"  plan.{k}: " + line.split(": ", 1)[1] + "\n"
        for k, line in zip(["tp", "pp", "dp", "zero", "schedule", "recompute", "collective",
                            "offload", "stage_layers"], bomb("").splitlines()))
    path = write(tmp_path, "s.yaml", text)
    assert_alias_limit(error_of(load_sweep, path), path, r"set\.plan\.[a-z_]+")


def test_alias_bomb_in_a_case_file(tmp_path):
    path = write(tmp_path, "cases.yaml", "source: x\ncommon:\n" + bomb("  "))
    assert_alias_limit(error_of(load_cases, path), path, r"common\.[a-i]")


def test_alias_bomb_in_a_set_value(capsys):
    value = "{" + ", ".join(line.strip() for line in bomb("").splitlines()) + "}"
    err = error_of(parse_set, f"plan.tp={value}")
    assert f"more than {MAX_YAML_VALUES:,} YAML values" in str(err)
    line = cli(capsys, "run", "gpt2", "--set", f"plan.tp={value}")
    assert "--set plan.tp" in line and f"{MAX_YAML_VALUES:,}" in line


def test_alias_inside_its_own_anchor(tmp_path):
    path = write(tmp_path, "w.yaml", "name: x\nloop: &a [1, *a]\n")
    text = str(error_of(load_yaml, path))
    assert "loop: invalid YAML: alias *a is used inside its own anchor &a" in text, text


def test_a_few_aliases_are_still_fine(tmp_path):
    path = write(tmp_path, "w.yaml", (
        "name: x\nmodel: &m {layers: 4, hidden: 64, heads: 4, vocab: 100, seq_len: 16}\n"
        "training: {global_batch: 16}\nplan: &p {tp: 1}\ndefaults: {cluster: single-node}\n"))
    wl = load_workload(str(path))
    assert wl.model.layers == 4


def test_a_runaway_list_without_aliases_names_its_key(tmp_path):
    """Counted values bound plain long lists too, and name the list, not an entry."""
    path = write(tmp_path, "w.yaml", "name: x\nplan:\n  stage_layers: ["
                 + ", ".join(["1"] * (MAX_YAML_VALUES + 1)) + "]\n")
    err = error_of(load_workload, str(path))
    assert_alias_limit(err, path, r"plan\.stage_layers")
    assert err.line == 3


# ---------------------------------------------------------------------------------------
# List lengths in the schema (checked before any entry is validated)


@pytest.mark.parametrize("key, entry, limit", [
    ("plan.stage_layers", 1, MAX_LAYERS),
    ("cluster.faults.stragglers", {"device": 0, "slowdown": 0.5}, MAX_DEVICES),
    ("cluster.faults.links", {"between": ["dev0", "nvsw0"], "bandwidth_factor": 0.5},
     MAX_DEGRADED_LINKS),
    ("cluster.intra.dims", 1, MAX_TORUS_DIMS),
    ("cluster.inter.dims", 1, MAX_TORUS_DIMS),
])
def test_list_lengths_are_bounded(key, entry, limit):
    count = 10 ** 6 if limit < 10 ** 6 else limit + 1
    over = [(key.removeprefix("cluster."), [entry] * count)]
    loader = load_cluster if key.startswith("cluster.") else load_workload
    name = "single-node" if loader is load_cluster else "gpt2"
    err = error_of(loader, name, over)
    assert err.key == key.removeprefix("cluster.")
    assert f"{count:,} entries is more than simwall's limit of {limit:,}" in err.message


def test_list_length_is_checked_before_the_entries():
    """A million bad entries give the length error, not a million entry errors."""
    bad = [{"device": "x"}] * 10 ** 6
    err = error_of(load_cluster, "single-node", [("faults.stragglers", bad)])
    assert f"more than simwall's limit of {MAX_DEVICES:,}" in err.message


def test_a_list_at_the_limit_is_accepted():
    wl = load_workload("gpt2", [("plan.stage_layers", [0] * MAX_LAYERS)])
    assert len(wl.plan.stage_layers) == MAX_LAYERS


def test_a_device_slowed_twice_is_refused(capsys):
    line = cli(capsys, "run", "gpt2", "--set", "cluster.faults.stragglers=[{device: 1, "
               "slowdown: 0.5}, {device: 1, slowdown: 0.9}]")
    assert "faults.stragglers[1].device: device 1 is already slowed by " \
           "faults.stragglers[0]" in line


HUGE_GPT2 = ("gpt2", "--set", "model.hidden=1638400", "--set", "model.ffn_hidden=6553600")


def test_bucket_limit_names_the_gradients_and_a_bucket_that_would_do(capsys):
    """The key was never set: the message says so, names the cause (the stage's gradient
    bytes from the model's size) and suggests a bucket size that passes the limit."""
    line = cli(capsys, "run", *HUGE_GPT2)
    assert ("workloads/gpt2.yaml: plan.dp_bucket_bytes: not set, so megatron's default of "
            "8e+07 bytes cuts the largest pipeline stage's gradients (1.55e+15 parameters x "
            "2 bytes = 3.09e+15 bytes, from the model's size) into 38,656,832 buckets") in line
    assert "25e6" not in line
    suggested = re.search(r"set plan.dp_bucket_bytes to (\S+) or more", line).group(1)
    assert float(suggested) == 3.1e9
    code = main(["show", *HUGE_GPT2, "--set", f"plan.dp_bucket_bytes={suggested}"])
    assert code == 0, capsys.readouterr().err  # the suggestion passes the limit
    capsys.readouterr()
    line = cli(capsys, "run", "gpt2", "--set", "plan.dp_bucket_bytes=1")
    assert "plan.dp_bucket_bytes: 1 bytes cuts" in line and line.endswith("(from --set)")


@pytest.mark.parametrize("grad_bytes", [3.09e15, 3.1e12, 1e6 + 1, 7.77e9, 123456789.0])
def test_min_bucket_bytes_is_round_and_passes_the_limit(grad_bytes):
    need = min_bucket_bytes(grad_bytes)
    assert math.ceil(grad_bytes / need) <= MAX_DP_BUCKETS
    assert need == float(f"{need:.2g}")                    # two significant digits
    assert need < 1.1 * grad_bytes / MAX_DP_BUCKETS + 1e-9 * need  # and no larger


# ---------------------------------------------------------------------------------------
# Sweep points, counted before anything is expanded

NINE_AXES = ["plan.tp", "plan.pp", "plan.dp", "plan.zero", "model.layers", "model.hidden",
             "training.global_batch", "training.micro_batch", "cluster.nodes"]


def test_a_billion_point_grid_is_refused_before_expansion(tmp_path, capsys, monkeypatch):
    def no_expansion(*args, **kwargs):
        raise AssertionError("expanded")
    monkeypatch.setattr(sw.itertools, "product", no_expansion)
    path = write(tmp_path, "s.yaml", "workload: gpt2\ngrid:\n" + "".join(
        f"  {k}: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n" for k in NINE_AXES))
    err = error_of(load_sweep, path)
    assert err.key == "grid" and err.line == 2
    assert f"= 1,000,000,000 points, more than simwall's limit of {MAX_SWEEP_POINTS:,}" \
        in err.message
    line = cli(capsys, "sweep", str(path), "-o", str(tmp_path / "o.csv"))
    assert "1,000,000,000 points" in line


def test_grid_times_zip_and_range_axes_count(tmp_path):
    grid = {"plan.tp": {"range": [0, 100_000, 1]}, "plan.pp": [1, 2, 3, 4, 5]}
    assert sweep_points(grid) == 500_000
    err = error_of(sweep_points_config, grid, {"plan.dp": [1, 2, 3]})
    assert "100,000 x 5 x 3 = 1,500,000 points" in err.message


def sweep_points_config(grid, zipped):
    try:
        sweep_points(grid, zipped)
    except ValueError as err:
        raise ConfigError(None, None, str(err)) from None


def test_the_api_refuses_too_many_points_before_any_runs():
    grid = {k: list(range(1, 11)) for k in NINE_AXES}
    with pytest.raises(ConfigError, match=f"more than simwall's limit of {MAX_SWEEP_POINTS:,}"):
        next(iter(sweep({"workload": "gpt2"}, grid)))
    with pytest.raises(ConfigError, match="1,000,000,000 points"):
        expand(grid)


def test_an_endless_range_axis(tmp_path):
    path = write(tmp_path, "s.yaml", "workload: gpt2\ngrid:\n"
                 "  plan.tp: {range: [0, 1.0e300, 1.0e-300]}\n")
    err = error_of(load_sweep, path)
    assert "gives infinitely many points, more than simwall's limit of 100,000" in str(err)


# ---------------------------------------------------------------------------------------
# Unknown sweep keys, refused before the first point


@pytest.mark.parametrize("body, key, message, line", [
    ("grid:\n  plan.tpp: [1, 2]\n", "grid.plan.tpp", "unknown key; did you mean 'plan.tp'?", 3),
    ("set:\n  cluster.nodez: 2\n", "set.cluster.nodez",
     "unknown key; did you mean 'cluster.nodes'?", 3),
    ("zip:\n  plan.tp: [1, 2]\n  cluster.device.peak_flops.bf61: [1.0e12, 2.0e12]\n",
     "zip.cluster.device.peak_flops.bf61",
     "unknown key; did you mean 'cluster.device.peak_flops.bf16'?", 4),
    ("grid:\n  plan.tp.x: [1]\n", "grid.plan.tp.x", "plan.tp is not a mapping", 3),
    ("set:\n  cluster: dgx-a100\n", "set.cluster", "top-level 'cluster:'", 3),
])
def test_unknown_sweep_keys(tmp_path, capsys, body, key, message, line):
    path = write(tmp_path, "s.yaml", "workload: gpt2\n" + body)
    err = error_of(load_sweep, path)
    assert (err.key, err.line) == (key, line) and message in err.message, str(err)
    out = cli(capsys, "sweep", str(path), "-o", str(tmp_path / "o.jsonl"))
    assert key in out and message in out
    assert not (tmp_path / "o.jsonl").exists() and not (tmp_path / "o.jsonl.partial.jsonl").exists()


def test_known_keys_of_every_kind_are_accepted(tmp_path):
    path = write(tmp_path, "s.yaml", (
        "workload: gpt2\nset:\n  cluster.device.memory_bandwidth: 2.0e12\n"
        "  cluster.inter.link.bandwidth: 25.0e9\n  model.dropout: false\n"
        "grid:\n  plan.tp: [1, 2]\n  cluster.device.peak_flops.bf16: [1.0e14]\n"))
    assert load_sweep(path).grid["plan.tp"] == [1, 2]


def test_the_api_refuses_unknown_keys_before_any_point_runs(monkeypatch):
    def no_point(*args, **kwargs):
        raise AssertionError("a point ran")
    monkeypatch.setattr(sw, "run_point", no_point)
    with pytest.raises(ConfigError, match=r"grid\.plan\.tpp: unknown key; did you mean"):
        list(sweep({"workload": "gpt2"}, {"plan.tpp": [1, 2]}))
    with pytest.raises(ConfigError, match=r"base\.overrides\.model\.layerz: unknown key"):
        list(sweep({"workload": "gpt2", "overrides": {"model.layerz": 2}}, {"plan.tp": [1]}))
