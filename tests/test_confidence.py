"""The confidence statement of every result (simwall.engine.confidence): validated device
and link models, against which published runs, with which error; 'not validated' else."""

from __future__ import annotations

import json

from simwall import simulate
from simwall.config import LinkRef
from simwall.engine import confidence as c


def test_a100_run_is_validated_against_megatron_and_states_the_error():
    r = simulate("gpt3-175b")
    conf = r.confidence
    assert conf["device"] == "A100-SXM4-80GB" and conf["device_validated"]
    files = {g["case_file"] for g in conf["validated_against"]}
    assert {"megatron-2021-table1", "megatron-2021-table2"} <= files
    assert all(g["cases"] > 0 and g["mean_abs_error_pct"] >= 0 for g in conf["validated_against"])
    assert {row["link"]: row["validated"] for row in conf["links"]} == \
        {"NVLink3": True, "IB-HDR": True}
    # the case files are listed by name (the FSDP / ZeRO-3 files sort before megatron-*)
    listed = conf["summary"].split("validated against ", 1)[1].split(" (", 1)[0].split(", ")
    assert {"megatron-2021-table1", "megatron-2021-table2"} <= set(listed)
    assert "mean |error|" in conf["summary"]


def test_unvalidated_device_and_changed_link_say_so():
    conf = c.confidence("B200", ("NVLink5", "IB-NDR"))
    assert not conf["device_validated"] and conf["validated_against"] == []
    assert "B200 not validated" in conf["summary"]
    assert "NVLink5 not validated" in conf["summary"]
    assert c.link_name(LinkRef(base="IB-HDR", bandwidth=1e9)) == "IB-HDR (changed)"
    assert c.link_name(LinkRef(base="IB-HDR")) == "IB-HDR"
    assert not c.confidence("TPU-v4", ("ICI-v4",))["links"][0]["validated"]


def test_pooled_numbers_match_the_groups():
    groups = c.coverage_table()["devices"]["A100-SXM4-80GB"]
    total = sum(g["cases"] for g in groups)
    assert f"({total} published runs" in c.confidence("A100-SXM4-80GB", ())["summary"]


def test_json_table_and_record_carry_the_statement():
    r = simulate("gpt2", "single-node")
    doc = json.loads(r.to_json())
    assert doc["confidence"]["summary"] == r.confidence["summary"]
    from simwall.report import render_table

    assert render_table(r).splitlines()[-1] == f"confidence: {r.confidence['summary']}"
    rec = r.to_record()
    assert rec["confidence.summary"] == r.confidence["summary"]
    assert rec["confidence.device_validated"] is True
    # one node: the inter-node link is not part of the statement
    assert [row["link"] for row in doc["confidence"]["links"]] == ["NVLink3"]


def test_plan_check_and_whatif_text_carry_the_confidence_line(capsys):
    """Every result says how sure it is, not only ``simwall run``: the plan table, the
    check verdict and the what-if comparison end with a confidence statement."""
    from simwall.cli import main

    commands = (["plan", "gpt2", "--cluster", "single-node", "--top", "1", "-q"],
                ["check", "llama2-7b", "--set", "cluster.nodes=4", "-q"],
                ["whatif", "gpt2", "--scale", "memory_bandwidth=2"])
    for argv in commands:
        assert main(argv) in (0, 1)
        out = capsys.readouterr().out
        assert any(line.startswith("confidence") and "validated" in line
                   for line in out.splitlines()), (argv, out)
