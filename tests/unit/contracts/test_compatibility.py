"""Schema compatibility by the Avro resolution rules."""

import copy
from typing import Any

import pytest

from streamkit.contracts.compatibility import Level, check, incompatibilities
from streamkit.errors import ConfigError

V1: dict[str, Any] = {
    "type": "record",
    "name": "Order",
    "namespace": "shop",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "amount", "type": "int"},
        {"name": "note", "type": "string", "default": ""},
        {
            "name": "line",
            "type": {
                "type": "record",
                "name": "Line",
                "fields": [{"name": "sku", "type": "string"}],
            },
        },
        {"name": "lines", "type": {"type": "array", "items": "Line"}},
        {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID"]}},
    ],
}


def _with(**changes: Any) -> dict[str, Any]:
    schema = copy.deepcopy(V1)
    fields = schema["fields"]
    for name in changes.get("drop", []):
        fields[:] = [f for f in fields if f["name"] != name]
    fields.extend(changes.get("add", []))
    for name, new_type in changes.get("retype", {}).items():
        next(f for f in fields if f["name"] == name)["type"] = new_type
    return schema


def test_adding_a_field_with_a_default_is_backward_and_forward_compatible() -> None:
    new = _with(add=[{"name": "channel", "type": "string", "default": "web"}])
    assert check(new, [V1], Level.FULL) == []


def test_adding_a_field_without_a_default_breaks_backward_and_names_it() -> None:
    new = _with(add=[{"name": "channel", "type": "string"}])
    problems = check(new, [V1], Level.BACKWARD)
    assert [str(p) for p in problems] == [
        "BACKWARD (the new schema reads old data): Order.channel: the reader has this field "
        "without a default, and the writer does not write it"
    ]
    assert check(new, [V1], Level.FORWARD) == []


def test_removing_a_field_without_a_default_breaks_forward_only() -> None:
    new = _with(drop=["amount"])
    assert check(new, [V1], Level.BACKWARD) == []
    (problem,) = check(new, [V1], Level.FORWARD)
    assert problem.path == "Order.amount"
    assert "without a default" in problem.rule
    assert check(_with(drop=["note"]), [V1], Level.FULL) == []  # it had a default


def test_type_promotions_and_changes() -> None:
    assert check(_with(retype={"amount": "long"}), [V1], Level.BACKWARD) == []
    (problem,) = check(_with(retype={"amount": "long"}), [V1], Level.FORWARD)
    assert problem.rule == "type changed from long to int"
    (problem,) = check(_with(retype={"id": "int"}), [V1], Level.BACKWARD)
    assert (problem.path, problem.rule) == ("Order.id", "type changed from string to int")


def test_nested_records_arrays_and_named_references_are_checked() -> None:
    line = {
        "type": "record",
        "name": "Line",
        "fields": [{"name": "sku", "type": "string"}, {"name": "qty", "type": "int"}],
    }
    new = _with(retype={"line": line})
    paths = {p.path for p in check(new, [V1], Level.BACKWARD)}
    assert paths == {"Order.line.qty"}


def test_enum_symbols_removed_break_backward_unless_a_default() -> None:
    fewer = {"type": "enum", "name": "Status", "symbols": ["NEW"]}
    assert "enum symbols ['PAID']" in str(
        check(_with(retype={"status": fewer}), [V1], Level.BACKWARD)[0]
    )
    with_default = {**fewer, "default": "NEW"}
    assert check(_with(retype={"status": with_default}), [V1], Level.BACKWARD) == []


def test_unions_widening_is_backward_compatible() -> None:
    assert check(_with(retype={"note": ["string", "null"]}), [V1], Level.BACKWARD) == []
    problems = check(_with(retype={"note": ["string", "null"]}), [V1], Level.FORWARD)
    assert any("union branch null" in p.rule for p in problems)


def test_transitive_levels_check_every_previous_version() -> None:
    v2 = _with(drop=["amount"])
    v3 = _with(drop=["amount"], add=[{"name": "amount", "type": "string", "default": "0"}])
    assert check(v3, [V1, v2], Level.BACKWARD) == []  # only against v2
    problems = check(v3, [V1, v2], Level.BACKWARD_TRANSITIVE)
    assert [p.path for p in problems] == ["Order.amount"]  # v1 wrote it as an int


def test_levels_parse_and_none_accepts_anything() -> None:
    assert Level.parse("full_transitive") is Level.FULL_TRANSITIVE
    with pytest.raises(ConfigError, match="unknown compatibility level"):
        Level.parse("sideways")
    assert check(_with(retype={"id": "int"}), [V1], Level.NONE) == []
    assert incompatibilities(V1, V1) == []
