"""``simwall plan --best-by``: the best plan of each combination of chosen axes, and the
CP degrees the search tries (``simwall.studies.search.cp_degrees``)."""

from __future__ import annotations

import json

import pytest

from simwall.cli import main
from simwall.errors import ConfigError
from simwall.studies.search import (
    BEST_BY_AXES,
    cp_degrees,
    cp_min_chunk_tokens,
    describe_plan,
    parse_axes,
    search,
)

MIXTRAL_8_NODES = ("mixtral-8x7b", "dgx-h100", {"cluster.nodes": 8})
#: A small MoE search: every fitting plan can be confirmed with the engine.
SMALL = {"cluster.nodes": 1, "model.layers": 2, "training.global_batch": 8}


def test_best_by_cp_ep_lists_both_axes_on_mixtral():
    wl, cl, over = MIXTRAL_8_NODES
    res = search(wl, cl, overrides=over, best_by="cp,ep")
    pairs = [(r.candidate.plan.cp, r.candidate.plan.ep) for r in res.ranked]
    assert len(pairs) == len(set(pairs))                 # one row per combination
    assert pairs == sorted(pairs)
    assert any(cp > 1 for cp, _ in pairs) and any(ep > 1 for _, ep in pairs)
    assert any(cp > 1 and ep > 1 for cp, ep in pairs)


def test_each_best_by_row_is_the_best_plan_with_its_degrees():
    full = search("mixtral-8x7b", "dgx-h100", top=10**6, confirm=10**6, overrides=SMALL)
    assert full.confirmed == full.fitting                # every fitting plan simulated
    best = search("mixtral-8x7b", "dgx-h100", confirm=10**6, overrides=SMALL,
                  best_by="cp,ep")
    first: dict[tuple[int, int], str] = {}
    for r in full.ranked:                                # best first
        first.setdefault((r.candidate.plan.cp, r.candidate.plan.ep),
                         describe_plan(r.candidate.plan))
    got = {(r.candidate.plan.cp, r.candidate.plan.ep): describe_plan(r.candidate.plan)
           for r in best.ranked}
    assert got == first
    assert len(got) > 1


def test_best_by_rows_in_json(capsys):
    wl, cl, over = MIXTRAL_8_NODES
    args = ["plan", wl, "--cluster", cl, "--quiet", "--best-by", "ep", "--format", "json"]
    for k, v in over.items():
        args += ["--set", f"{k}={v}"]
    assert main(args) == 0
    recs = json.loads(capsys.readouterr().out)
    assert [r["search.best_by"] for r in recs] == [f"ep={r['plan.ep']}" for r in recs]
    assert sorted({r["plan.ep"] for r in recs}) == [1, 2, 4, 8]


@pytest.mark.parametrize("spec", ["cp,foo", "cp,cp", ""])
def test_bad_best_by_axis_is_one_located_line(spec, capsys):
    if spec:
        with pytest.raises(ConfigError, match="--best-by"):
            parse_axes(spec)
    assert main(["plan", "gpt2", "--cluster", "single-node", "--best-by", spec or ",",
                 "--quiet"]) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("simwall: error: --best-by: ") and "\n" not in err
    assert "Traceback" not in err


def test_plain_listing_shows_cp_and_ep_for_moe_long_context():
    wl, cl, over = MIXTRAL_8_NODES
    res = search(wl, cl, overrides=over, top=3)
    assert res.show_cp and res.show_ep
    from simwall.studies.search import render_search
    rows = render_search(res).splitlines()[2:5]
    assert all(" cp=" in row and " ep=" in row for row in rows)


def test_axes_name_plan_fields():
    from simwall.plan import Plan
    assert set(BEST_BY_AXES.values()) <= set(Plan.__dataclass_fields__)


# --- which cp degrees the search tries -------------------------------------------------


def _inputs(name, cluster=None, **over):
    from simwall.cli.common import workload_and_cluster
    return workload_and_cluster(name, cluster, [f"{k}={v}" for k, v in over.items()])


def test_cp_min_chunk_is_ring_attention_f_over_b():
    wl, cl = _inputs("gpt3-175b")                       # A100 bf16 / NVLink3, MHA
    assert cp_min_chunk_tokens(wl, cl) == pytest.approx(312e12 / 300e9)
    wl, cl = _inputs("mixtral-8x7b", "dgx-h100")         # GQA: 8 of 32 heads carry K/V
    assert cp_min_chunk_tokens(wl, cl) == pytest.approx(989.4e12 / 450e9 / 4, rel=0.01)


def test_cp_degrees_keep_chunks_above_the_minimum():
    wl, cl = _inputs("mixtral-8x7b", "dgx-h100", **{"cluster.nodes": 8})
    assert cp_degrees(wl, cl) == (1, 2, 4)               # 4096 / 8 = 512 < 550 tokens
    wl, cl = _inputs("gpt3-175b")                        # 2048 / 2 = 1024 < 1040 tokens
    assert cp_degrees(wl, cl) == (1,)
    wl, cl = _inputs("llama3-405b-128k")
    assert cp_degrees(wl, cl) == (1, 2, 4, 8, 16)


def test_cp_degrees_fall_with_a_slower_link():
    """A slower intra-node link needs longer chunks to hide the K/V ring (F / B grows)."""
    wl, cl = _inputs("mixtral-8x7b", "dgx-h100", **{"cluster.nodes": 8})
    slow = cl.model_copy(update={"intra": cl.intra.model_copy(update={"link": "NVLink3"})})
    assert cp_min_chunk_tokens(wl, slow) > cp_min_chunk_tokens(wl, cl)
    assert set(cp_degrees(wl, slow)) <= set(cp_degrees(wl, cl))
