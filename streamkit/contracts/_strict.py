"""Fields a contract does not have: fastavro writes a record and silently drops the keys
its schema lacks, so an event that breaks its contract that way would lose data unseen.

A checker is compiled once per schema and walks only where records are (nested records,
arrays and maps of them, unions with a record): on a flat record it is one subset test of
the keys. (fastavro's own ``strict`` mode also refuses records that leave a field to its
default, which contracts allow.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["unknown_field_checker"]

Check = Callable[[Any, str], str | None]
"""``check(value, path)``: the path of the first field the schema lacks, or None."""


def unknown_field_checker(parsed: Any) -> Callable[[Any], str | None] | None:
    """A function giving the path of a field ``parsed`` does not have (``Order.lines[1].x``)
    in a value, or None; None when the schema has no record to check."""
    named: dict[str, Any] = (
        dict(parsed.get("__named_schemas", {})) if isinstance(parsed, dict) else {}
    )
    compiled: dict[str, Check | None] = {}

    def by_name(name: str) -> Check | None:
        if name not in compiled:
            # A type referring to itself is not checked again inside itself (rare; the
            # writer still refuses wrong types there).
            compiled[name] = None
            compiled[name] = make(named[name])
        return compiled[name]

    def make(schema: Any) -> Check | None:  # noqa: PLR0911 - one return per schema kind
        if isinstance(schema, str):
            return by_name(schema) if schema in named else None
        if isinstance(schema, list):
            branches = [c for c in (make(s) for s in schema) if c is not None]
            if not branches:
                return None
            return lambda value, path: (
                _first(branches, value, path) if isinstance(value, dict) else None
            )
        if not isinstance(schema, dict):
            return None
        kind = schema.get("type")
        if kind in {"record", "error"}:
            return _record(schema, make)
        if kind == "array":
            items = make(schema["items"])
            if items is None:
                return None
            return lambda value, path: _each(items, enumerate(value), path)
        if kind == "map":
            values = make(schema["values"])
            if values is None:
                return None
            return lambda value, path: _each(values, value.items(), path)
        if isinstance(kind, (dict, list)) or (isinstance(kind, str) and kind in named):
            return make(kind)
        return None

    top = make(parsed)
    if top is None:
        return None
    label = str(parsed.get("name", "")).rpartition(".")[2] if isinstance(parsed, dict) else ""
    return lambda value: top(value, label)


def _record(schema: Any, make: Callable[[Any], Check | None]) -> Check:
    names = frozenset(f["name"] for f in schema["fields"])
    nested = [(f["name"], inner) for f in schema["fields"] if (inner := make(f["type"]))]

    def check(value: Any, path: str) -> str | None:
        if not isinstance(value, dict):
            return None  # a wrong type: the writer says so
        if not value.keys() <= names:
            return f"{path}.{sorted(set(value) - names)[0]}"
        for name, inner in nested:
            if name in value:
                found = inner(value[name], f"{path}.{name}")
                if found is not None:
                    return found
        return None

    return check


def _each(check: Check, items: Any, path: str) -> str | None:
    try:
        for key, item in items:
            found = check(item, f"{path}[{key!r}]" if isinstance(key, str) else f"{path}[{key}]")
            if found is not None:
                return found
    except (TypeError, AttributeError):
        return None  # not an array or map: the writer says so
    return None


def _first(checks: list[Check], value: Any, path: str) -> str | None:
    found = [check(value, path) for check in checks]
    return None if any(f is None for f in found) else found[0]
