"""Tests of simwall.cli: one-line errors with exit 2, subcommands, --set plumbing."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from simwall.cli import main
from simwall.errors import ConfigError

GOOD = ("name: tiny\nmodel: {layers: 4, hidden: 64, heads: 4, vocab: 100, seq_len: 16}\n"
        "training: {global_batch: 16}\nplan: {tp: 2, pp: 2}\n"
        "defaults: {cluster: dgx-a100, devices: 8}\n")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *needles: str) -> str:
    assert code == 2
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("simwall: error: ")
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def workload_file(tmp_path: Path, text: str | bytes) -> str:
    p = tmp_path / "w.yaml"
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(p)


# (file content or None for gpt3-175b, extra argv, strings the one error line must hold)
BAD_INPUTS = [
    pytest.param(GOOD.replace("tp: 2, pp: 2}", "tp: 2, pp: 2\n"), [],
                 [":6: invalid YAML", "(while parsing a flow mapping at line 4)"],
                 id="yaml-syntax-line"),
    pytest.param(GOOD.replace("tp: 2,", "tpp: 2,"), [],
                 [":4: plan.tpp: unknown key; did you mean 'tp'?"], id="unknown-key"),
    pytest.param(GOOD.replace("tp: 2,", "tp: two,"), [],
                 [":4: plan.tp: expected an integer > 0, got 'two'"], id="wrong-type"),
    pytest.param(GOOD.replace("layers: 4", "layers: -4"), [],
                 [":2: model.layers: expected an integer > 0, got -4"], id="non-positive"),
    pytest.param(GOOD.replace("heads: 4", "heads: .nan"), [],
                 [":2: model.heads: expected a finite number, got nan"], id="nan"),
    pytest.param(GOOD.replace("name: tiny", "name: tiny\nname: again"), [],
                 [":2: name: duplicate key (first at line 1)"], id="duplicate-key"),
    pytest.param("", [], ["w.yaml: empty file"], id="empty-file"),
    pytest.param(b"\x7fELF\x02\x01\x01\x00\x00\x00\xff\xfe\xfd", [], ["w.yaml: not UTF-8"],
                 id="binary-junk"),
    pytest.param("[1, 2]\n", [], ["w.yaml: expected a mapping at the top"], id="non-mapping"),
    pytest.param(None, ["--set", "plan.tp=7"],
                 ["workloads/gpt3-175b.yaml: plan.tp: must divide model.heads (96), got 7"],
                 id="tp-not-dividing-heads"),
    pytest.param(None, ["--set", "plan.pp=97"],
                 ["plan.pp: model.layers (96) must be at least plan.pp x plan.virtual_stages"],
                 id="fewer-layers-than-chunks"),
    pytest.param(None, ["--set", "plan.stage_layers=[10,10,10,10,10,10,10,10]"],
                 ["plan.stage_layers: must sum to model.layers (96), got 80"], id="stage-sum"),
    pytest.param(None, ["--set", "training.global_batch=1000"],
                 ["training.global_batch: must be divisible by plan.dp x training.micro_batch"],
                 id="batch-not-divisible"),
    pytest.param(None, ["--set", "plan.dp=3"],
                 ["plan.dp: plan.tp x plan.pp x plan.dp", "must equal the cluster's 1536"],
                 id="world-mismatch"),
    pytest.param(None, ["--set", "cluster.device=H900"],
                 ["topologies/dgx-a100.yaml: device: unknown device 'H900'"], id="unknown-device"),
    pytest.param(None, ["--set", "plan.virtual_stages=2"],
                 ["plan.virtual_stages: must be 1 unless plan.schedule is interleaved"],
                 id="virtual-stages-without-interleaved"),
    pytest.param(None, ["--set", "plan.tp"], ["--set", "expected KEY=VALUE"], id="bad-set-syntax"),
    pytest.param(None, ["--set", "plan.dp=x"],
                 ["plan.dp: expected an integer > 0 or 'auto', got 'x' (from --set)"],
                 id="union-label-stripped"),
    pytest.param(None, ["--set", "cluster.device.memory_bandwith=4e12"],
                 ["device.memory_bandwith: unknown key; did you mean 'memory_bandwidth'?"],
                 id="unknown-nested-key"),
]


@pytest.mark.parametrize("content, extra, needles", BAD_INPUTS)
def test_bad_input_gives_one_line_and_exit_2(tmp_path, capsys, content, extra, needles):
    target = "gpt3-175b" if content is None else workload_file(tmp_path, content)
    code, out, err = run(capsys, "show", target, *extra)
    line = assert_one_line_error(code, err, *needles)
    assert out == ""
    if content is not None:
        assert str(tmp_path / "w.yaml") in line


@pytest.mark.parametrize("argv, needles", [
    (["show", "gpt3-175"], ["did you mean 'gpt3-175b'?"]),
    (["show", "/no/such/file.yaml"], ["/no/such/file.yaml: no such file"]),
    (["show", "gpt3-175b", "--cluster", "dgx-a10"], ["did you mean 'dgx-a100'?"]),
    (["list", "gizmos"], ["invalid choice: 'gizmos'"]),
    (["run", "--format", "xml"], ["invalid choice: 'xml'"]),
    (["frobnicate"], ["invalid choice: 'frobnicate'"]),
    ([], ["required"]),
    (["roofline"], ["required: workload"]),
    (["run", "gpt3-175b", "--set", "=3"], ["--set"]),
])
def test_usage_and_lookup_errors(capsys, argv, needles):
    code, _, err = run(capsys, *argv)
    assert_one_line_error(code, err, *needles)


def test_help_and_version(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    assert "simwall check" in out and "simwall validate" in out and "published runs" in out
    code, out, _ = run(capsys, "--version")
    assert code == 0 and re.match(r"simwall \d+\.\d+", out)


def test_list_devices_workloads_topologies(capsys):
    code, out, _ = run(capsys, "list", "devices")
    assert code == 0 and re.search(r"A100-SXM4-80GB\s+gpu\s+312\s+80\s+2,039", out)
    code, out, _ = run(capsys, "list", "workloads")
    assert code == 0 and "llama3-405b" in out and "megatron-1t" in out
    assert len(out.splitlines()) >= 10
    code, out, _ = run(capsys, "list", "topologies")
    assert code == 0 and "dgx-a100" in out


def test_list_links(capsys):
    from simwall.hardware.catalog import links

    code, out, _ = run(capsys, "list", "links")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[0] == "link" and len(lines) == 1 + len(links())
    assert re.search(r"NVLink3\s+300\.00\s+0\.47\s+0\.78", out)   # efficiency 0.775 (links.yaml)
    assert re.search(r"IB-HDR\s+25\.00\s+2\.70", out)


def test_unknown_link_error_points_to_list_links(capsys):
    code, _, err = run(capsys, "show", "dgx-a100", "--set", "inter.link=IB-XDR")
    line = assert_one_line_error(code, err, "unknown link 'IB-XDR'")
    assert "simwall list links" in line


def test_every_command_is_registered_and_parses_its_help(capsys):
    from simwall.cli.main import COMMANDS, build_parser, command_module

    code, out, _ = run(capsys, "--help")
    assert code == 0
    for name, command in COMMANDS.items():
        assert re.search(rf"^    {name}\s+{re.escape(command.help[:30])}", out, re.MULTILINE), name
        module = command_module(name)
        assert callable(module.run) and callable(module.add_arguments)
        code, out_, err = run(capsys, name, "--help")
        assert code == 0 and out_.startswith(f"usage: simwall {name} "), err
    build_parser()  # every command's arguments at once: no clashes


def test_root_help_imports_no_command_and_no_library_module():
    """``simwall --help`` lists the commands without importing them (start-up stays fast)."""
    script = ("import sys\nfrom simwall.cli import main\nmain(['--help'])\n"
              "print(' '.join(sorted(m for m in sys.modules if m.startswith('simwall'))))\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=True, cwd=Path(__file__).resolve().parent.parent)
    loaded = set(proc.stdout.splitlines()[-1].split())
    assert loaded <= {"simwall", "simwall.errors", "simwall.memo", "simwall.cli",
                      "simwall.cli.main"}, loaded


#: What a symmetric ``simwall run`` has no use for: the cluster graph (networkx), the
#: array code of large flow batches (numpy), the studies and the process pool, the
#: explicit-graph generator. Importing them costs most of a fresh process's start-up.
NOT_FOR_A_SYMMETRIC_RUN = {
    "networkx", "numpy", "matplotlib", "concurrent.futures", "multiprocessing.pool",
    "simwall.studies.search", "simwall.studies.sweeps", "simwall.studies.plots",
    "simwall.studies.validate", "simwall.net.generators.explicit",
}


@pytest.mark.parametrize("argv", [["run"], ["run", "gpt3-175b", "--format", "json"]])
def test_a_symmetric_run_imports_no_graph_library_and_no_study(argv):
    """``simwall run`` of a symmetric cluster in a fresh process builds no graph, and
    GPT-3's collectives drain flow batches small enough for Python floats: none of the
    modules above is imported (start-up, benchmarks/bench_startup.py), and the run still
    prints its result. (A data-parallel ring over 128 devices drains 128 flows at once,
    on numpy.)"""
    script = ("import contextlib, io, sys\nfrom simwall.cli.main import main\n"
              "out = io.StringIO()\nwith contextlib.redirect_stdout(out):\n"
              f"    code = main({argv!r})\n"
              "print(code, len(out.getvalue()), ' '.join(sorted(sys.modules)))\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=True, cwd=Path(__file__).resolve().parent.parent)
    code, printed, *loaded = proc.stdout.splitlines()[-1].split()
    assert code == "0" and int(printed) > 100, proc.stderr
    assert "simwall.engine" in loaded                       # it did simulate
    assert NOT_FOR_A_SYMMETRIC_RUN.isdisjoint(loaded), \
        sorted(NOT_FOR_A_SYMMETRIC_RUN.intersection(loaded))


@pytest.mark.parametrize("command", ["plan", "check", "validate", "sweep", "design",
                                     "roofline"])
def test_a_command_help_imports_no_study_runner(command):
    """``simwall COMMAND --help`` builds the parser only: the library a command runs
    (plan search, sweeps and their process pool, validation, plots) is imported by
    the command itself. (Not ``whatif``: its help lists the scalable resources, which
    its study module defines.)"""
    script = ("import sys\nfrom simwall.cli.main import main\n"
              f"code = main([{command!r}, '--help'])\n"
              "print(code, ' '.join(sorted(sys.modules)))\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=True, cwd=Path(__file__).resolve().parent.parent)
    code, *loaded = proc.stdout.splitlines()[-1].split()
    assert code == "0", proc.stderr
    assert f"simwall.cli.{command}" in loaded
    heavy = NOT_FOR_A_SYMMETRIC_RUN | {"simwall.studies.check", "simwall.engine"}
    assert heavy.isdisjoint(loaded), sorted(heavy.intersection(loaded))


def derived(out: str) -> dict:
    """The part of ``simwall show``'s output printed as YAML comments, read as YAML."""
    import yaml

    from simwall.cli.show import DERIVED_NOTE

    lines = out.splitlines()
    start = lines.index(f"# {DERIVED_NOTE}") + 1
    return yaml.safe_load("\n".join(line[2:] for line in lines[start:]))


def test_show_workload_resolves_the_plan(capsys):
    import yaml

    code, out, _ = run(capsys, "show", "llama3-405b", "--cluster", "dgx-a100")
    assert code == 0
    doc, resolved = yaml.safe_load(out), derived(out)["resolved"]
    assert resolved["stage_layers"] == [7] + [8] * 14 + [7]
    assert resolved["dp"] == 64 and resolved["micro_batches"] == 32
    assert doc["model"]["layers"] == 126 and "resolved" not in doc


@pytest.mark.parametrize("name, load", [("llama3-405b", "load_workload"),
                                        ("dgx-a100", "load_cluster")])
def test_show_output_loads_again_and_stays_strict(tmp_path, capsys, name, load):
    """What show prints is a loadable file with the same content; the derived part is
    comments, so the loader still refuses any unknown key (a 'resolved:' written back)."""
    from simwall import config

    code, out, err = run(capsys, "show", name)
    assert code == 0, err
    path = tmp_path / "s.yaml"
    path.write_text(out)
    loader = getattr(config, load)
    dump = {"exclude": {"file"}, "exclude_none": True}
    assert loader(str(path)).model_dump(**dump) == loader(name).model_dump(**dump)
    key = "resolved" if load == "load_workload" else "resolved_device"
    path.write_text(out + f"{key}: {{}}\n")
    with pytest.raises(ConfigError, match=f"{key}: unknown key"):
        loader(str(path))


def test_show_applies_set_overrides(capsys):
    import yaml

    code, out, _ = run(capsys, "show", "gpt3-175b", "--set", "plan.tp=4", "--set",
                       "model.layers=48", "--set", "cluster.nodes=64", "--set",
                       "cluster.device.memory_bandwidth=4e12")
    assert code == 0, out
    doc, resolved = yaml.safe_load(out), derived(out)["resolved"]
    assert doc["plan"]["tp"] == 4 and doc["model"]["layers"] == 48
    assert resolved["nodes"] == 64 and resolved["devices"] == 512
    assert resolved["dp"] == 16
    assert resolved["device"] == "A100-SXM4-80GB (memory_bandwidth changed)"


def test_show_cluster_and_device(capsys):
    import yaml

    code, out, _ = run(capsys, "show", "dgx-a100", "--set", "cluster.device.memory_bandwidth=4e12")
    assert code == 0
    assert derived(out)["resolved_device"]["memory_bandwidth"] == 4e12
    device = yaml.safe_load(out)["device"]
    assert device["base"] == "A100-SXM4-80GB" and device["memory_bandwidth"] == 4e12
    code, out, _ = run(capsys, "show", "A100-SXM4-80GB")
    assert code == 0 and yaml.safe_load(out)["peak_flops"]["bf16"] == 312e12


def test_show_workload_file_from_any_directory(tmp_path, capsys, monkeypatch):
    path = workload_file(tmp_path, GOOD)
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "show", path)
    assert code == 0, err
    assert "stage_layers: [2, 2]" in out
    code, out, err = run(capsys, "show", "gpt3-175b")
    assert code == 0 and "gpt3-175b" in out


def test_run_json(capsys):
    code, out, err = run(capsys, "run", "gpt3-175b", "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    for key in ("step_time_s", "tokens_per_s", "model_tflops_per_device", "mfu",
                "hardware_tflops_per_device", "hfu", "breakdown_s", "memory", "plan"):
        assert key in doc
    assert set(doc["breakdown_s"]) == {"compute", "tp_comm", "pp_comm", "dp_comm", "bubble",
                                       "optimizer", "other"}
    assert sum(doc["breakdown_s"].values()) == pytest.approx(doc["step_time_s"], rel=1e-9)
    assert doc["plan"]["tp"] == 8 and doc["plan"]["dp"] == 24
    for dev in doc["memory"]["devices"]:
        for key in ("stage", "params_bytes", "grads_bytes", "optimizer_bytes",
                    "activations_bytes", "other_bytes", "peak_bytes"):
            assert key in dev
    assert doc["memory"]["fits"] == (doc["memory"]["peak_bytes"]
                                     <= doc["memory"]["capacity_bytes"])


def test_run_table_and_not_fitting_is_a_result(capsys):
    code, out, err = run(capsys, "run", "gpt3-175b", "--set", "plan.tp=1", "--set",
                         "plan.pp=1", "--set", "plan.sequence_parallel=false")
    assert code == 0, err
    assert "fits: NO" in out and "step time" in out


def test_run_trace_is_valid_chrome_json(capsys, tmp_path):
    path = tmp_path / "t.json"
    code, _, err = run(capsys, "run", "bert-base", "--trace", str(path))
    assert code == 0, err
    doc = json.loads(path.read_text())
    complete = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    assert complete
    for e in complete:
        for key in ("ph", "ts", "dur", "pid", "tid", "name"):
            assert key in e
        assert e["dur"] >= 0


def test_run_errors_are_one_line(capsys):
    code, _, err = run(capsys, "run", "gpt3-175b", "--set", "plan.tp=7")
    assert_one_line_error(code, err, "plan.tp: must divide model.heads (96), got 7")


def test_topo(capsys):
    code, out, err = run(capsys, "topo", "dgx-a100", "--set", "cluster.nodes=2")
    assert code == 0, err
    assert re.search(r"route 0 -> 15: \d+ hops, bottleneck [\d,.]+ GB/s", out)
    code, _, err = run(capsys, "topo", "dgx-a100", "--route", "0", "99")
    assert_one_line_error(code, err, "device 99 out of range")


def test_topo_route_from_a_device_to_itself_is_refused(capsys):
    code, _, err = run(capsys, "topo", "dgx-a100", "--set", "cluster.nodes=2",
                       "--route", "3", "3")
    line = assert_one_line_error(code, err, "--route: expected two different devices")
    assert "inf" not in line
    # A one-device cluster has no default route to print, and says so.
    code, out, err = run(capsys, "topo", "single-node", "--set",
                         "cluster.devices_per_node=1")
    assert code == 0, err
    assert out.splitlines()[-1] == "route: none (the cluster has one device)"


def test_roofline(capsys):
    code, out, err = run(capsys, "roofline", "gpt2", "--device", "A100-SXM4-80GB")
    assert code == 0, err and out


def test_roofline_checks_the_plan_as_run_does(capsys):
    code, _, run_err = run(capsys, "run", "gpt2", "--set", "plan.tp=3")
    message = "workloads/gpt2.yaml: plan.tp: must divide model.heads (25), got 3"
    assert_one_line_error(code, run_err, message)
    code, out, err = run(capsys, "roofline", "gpt2", "--set", "plan.tp=3")
    assert_one_line_error(code, err, message)
    assert out == ""


def test_roofline_unknown_device_names_the_option(capsys):
    code, _, err = run(capsys, "roofline", "gpt2", "--device", "nosuch")
    line = assert_one_line_error(code, err, "--device: unknown device 'nosuch'")
    assert "topologies/" not in line
    code, out, err = run(capsys, "roofline", "gpt2", "--device", "h100-sxm5-80gb")
    assert code == 0, err
    assert out.startswith("roofline: H100-SXM5-80GB,")


# Input errors of 'check' are errors (stderr, exit 2) like every command's; its verdict
# 'invalid' (stdout, exit 1) is for a well-formed plan that cannot run.
CHECK_INPUT_ERRORS = [
    pytest.param(GOOD.replace("tp: 2,", "tpp: 2,"), [], ":4: plan.tpp: unknown key",
                 id="unknown-key"),
    pytest.param(GOOD.replace("tp: 2,", "tp: two,"), [], ":4: plan.tp: expected an integer",
                 id="wrong-type"),
    pytest.param("", [], "w.yaml: empty file", id="empty-file"),
    pytest.param(GOOD.replace("tp: 2, pp: 2}", "tp: 2, pp: 2\n"), [], ":6: invalid YAML",
                 id="yaml-syntax"),
    pytest.param(None, [], "w.yaml: no such file", id="missing-file"),
    pytest.param(GOOD, ["--set", "plan.tpp=2"], "plan.tpp: unknown key", id="set-unknown-key"),
    pytest.param(GOOD, ["--set", "cluster.device=H900"], "device: unknown device 'H900'",
                 id="unknown-device"),
]


@pytest.mark.parametrize("content, extra, needle", CHECK_INPUT_ERRORS)
@pytest.mark.parametrize("fmt", ["table", "json"])
def test_check_input_errors_are_errors_not_verdicts(tmp_path, capsys, content, extra,
                                                    needle, fmt):
    target = str(tmp_path / "w.yaml") if content is None else workload_file(tmp_path,
                                                                             content)
    code, out, err = run(capsys, "check", target, "--format", fmt, "-q", *extra)
    assert_one_line_error(code, err, needle)
    assert out == ""


def test_check_invalid_plan_is_still_a_verdict(tmp_path, capsys):
    code, out, err = run(capsys, "check", workload_file(tmp_path, GOOD), "-q",
                         "--set", "plan.tp=3")
    assert code == 1 and err == ""
    assert out.startswith("invalid: ") and "plan.tp: must divide model.heads (4)" in out


@pytest.mark.parametrize("command", ["topo", "collective"])
def test_cluster_commands_set_help_gives_a_cluster_key(capsys, command):
    assert main([command, "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "e.g. cluster.nodes=2" in text and "plan.tp" not in text


def test_plot_help_lists_every_format_it_reads(capsys):
    assert main(["plot", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert ".parquet" in text and "CSV, JSONL or Parquet" in text


def test_console_script_smoke(tmp_path):
    """The installed entry point works from another directory and errors cleanly."""
    exe = shutil.which("simwall", path=os.path.dirname(sys.executable))
    cmd = [exe] if exe else [sys.executable, "-m", "simwall.cli"]
    ok = subprocess.run([*cmd, "list", "workloads"], cwd=tmp_path, capture_output=True,
                        text=True, timeout=60, check=False)
    assert ok.returncode == 0 and "gpt3-175b" in ok.stdout
    bad = subprocess.run([*cmd, "show", "gpt3-175b", "--set", "plan.tp=-3"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 2
    assert bad.stderr == ("simwall: error: workloads/gpt3-175b.yaml: plan.tp: expected an "
                          "integer > 0, got -3 (from --set)\n")


def test_an_unknown_option_before_the_command_is_named(capsys):
    assert main(["--frobnicate"]) == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --frobnicate" in err and "expected a command" in err
    assert main([]) == 2
    assert "the following arguments are required: COMMAND" in capsys.readouterr().err


def test_topo_says_what_it_does_on_a_terminal_for_a_large_cluster(monkeypatch, capsys):
    import io

    from simwall.cli import topo

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(topo, "STATUS_DEVICES", 16)
    for quiet, shown in ((False, True), (True, False)):
        err = Terminal()
        monkeypatch.setattr("sys.stderr", err)
        argv = ["topo", "dgx-a100", "--set", "cluster.nodes=2"] + (["--quiet"] if quiet else [])
        assert main(argv) == 0
        assert ("measuring its bisection (max-flow), 16 devices..." in err.getvalue()) == shown
        assert "bisection_bandwidth_bytes_per_s" in capsys.readouterr().out
