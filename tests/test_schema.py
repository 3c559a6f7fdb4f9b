"""Tests of simwall.config.schema: names of extension points come from simwall.registry."""

from __future__ import annotations

from typing import Annotated

import pytest

from simwall import registry
from simwall.config import PlanSpec, Strict, validate
from simwall.config.schema import OneOf
from simwall.errors import ConfigError
from simwall.plan.schedules import tasks_for
from simwall.registry import Registry


def message_of(model, doc) -> str:
    with pytest.raises(ConfigError) as info:
        validate(model, doc, "w.yaml")
    return info.value.message


def test_a_schedule_added_to_the_registry_is_accepted(monkeypatch):
    """One registry entry is enough: the schema accepts the name, lists it in errors and
    tasks_for runs it (here an alias of 1F1B, standing in for a new module)."""
    assert message_of(PlanSpec, {"schedule": "zb"}) == \
        "expected one of 'gpipe', '1f1b', 'interleaved', 'zero_bubble', got 'zb'"
    # Registry has no public way to add an entry at run time (entries are written in
    # simwall/registry.py); patch its table for this test only.
    monkeypatch.setitem(registry.SCHEDULES._targets, "zb",
                        "simwall.plan.schedules.one_f_one_b:tasks")
    monkeypatch.setattr(registry.SCHEDULES, "_loaded", dict(registry.SCHEDULES._loaded))
    assert validate(PlanSpec, {"schedule": "zb"}, "w.yaml").schedule == "zb"
    assert message_of(PlanSpec, {"schedule": "zz"}) == \
        "expected one of 'gpipe', '1f1b', 'interleaved', 'zero_bubble', 'zb', got 'zz'"
    assert tasks_for("zb", 4, 1, 8, 1) == tasks_for("1f1b", 4, 1, 8, 1)


def test_registry_backed_field_accepts_choices_and_also_only():
    things = Registry("thing", {"a": "m:a", "b": "m:b", "secret": "m:s"}, internal=("secret",))

    class Spec(Strict):
        thing: Annotated[str, OneOf(things, also=("auto",))] = "auto"

    assert [validate(Spec, {"thing": t}, "w.yaml").thing for t in ("auto", "a", "b")] == \
        ["auto", "a", "b"]
    expected = "expected one of 'auto', 'a', 'b', got "
    assert message_of(Spec, {"thing": "secret"}) == expected + "'secret'"  # internal name
    assert message_of(Spec, {"thing": 3}) == expected + "3"
    assert message_of(Spec, {"thing": None}) == expected + "null (empty)"


@pytest.mark.parametrize("field, reg, also", [
    ("schedule", registry.SCHEDULES, ()),
    ("collective", registry.COLLECTIVE_ALGORITHMS, ("auto",)),
])
def test_plan_names_are_the_registry_choices(field, reg, also):
    for name in also + reg.choices():
        assert getattr(validate(PlanSpec, {field: name}, "w.yaml"), field) == name
    listed = ", ".join(repr(n) for n in also + reg.choices())
    assert message_of(PlanSpec, {field: "nope"}) == f"expected one of {listed}, got 'nope'"


@pytest.mark.parametrize("key", ["inter.oversubscription", "inter.agg_oversubscription"])
def test_a_taper_is_bounded(key):
    from simwall.config import load_cluster

    assert getattr(load_cluster("dgx-a100", [(key, 64.0)]).inter, key.split(".")[1]) == 64.0
    with pytest.raises(ConfigError, match=f"{key}: expected a number >= 1 and <= 64"):
        load_cluster("dgx-a100", [(key, 1e300)])
