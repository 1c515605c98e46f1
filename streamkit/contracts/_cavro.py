"""The optional faster Avro codec: cavro (``pip install 'streamkit[cavro]'``), where it
gives exactly what fastavro gives.

fastavro stays the codec of record: cavro is used only on the hot path (a record written
with the topic's current contract, or written with it) and only for contracts whose
values the two libraries represent alike: records, enums, arrays, maps, unions, fixed and
the primitive types, no logical types (the two differ there: UUID objects or strings,
time zones). Anything cavro refuses goes through fastavro again, which then says what is
wrong. Byte-for-byte identical output is tested (``tests/unit/contracts``).

Unknown fields are refused, as fastavro's path refuses them. cavro's own check of that
costs a fifth of an encode; for a *flat* contract (one record, no record inside it) cavro
skips it and the caller checks instead: the value's size when no field has a default
(cavro then refuses a value missing one), else its keys against :attr:`FastCodec.fields`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["FastCodec", "fast_codec"]

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})


@dataclass(frozen=True, slots=True)
class FastCodec:
    """cavro's ``decode`` and ``encode`` of a schema body. When ``fields`` is not None,
    ``encode`` ignores fields the record does not have: the caller must check that a
    value's keys are among ``fields`` before using what it wrote."""

    decode: Callable[[bytes], Any]
    encode: Callable[[Any], bytes]
    fields: frozenset[str] | None
    complete: bool = False
    """No field has a default: what ``encode`` took had every field, so a dict of
    ``len(fields)`` keys has no other (cheaper to check than its keys)."""


def fast_codec(schema_json: str) -> FastCodec | None:
    """The cavro codec of ``schema_json``, or None (cavro missing, or the schema has a
    logical type)."""
    try:
        import cavro  # noqa: PLC0415 - optional extra
    except ImportError:
        return None
    parsed = orjson.loads(schema_json)
    if _logical(parsed):
        return None
    flat = _flat(parsed)
    schema = cavro.Schema(schema_json, record_decodes_to_dict=True, record_allow_extra_fields=flat)
    fields = frozenset(f["name"] for f in parsed["fields"]) if flat else None
    complete = flat and not any("default" in f for f in parsed["fields"])
    return FastCodec(schema.binary_decode, schema.binary_encode, fields, complete)


def _logical(node: Any) -> bool:
    if isinstance(node, dict):
        return "logicalType" in node or any(_logical(v) for v in node.values())
    if isinstance(node, list):
        return any(_logical(v) for v in node)
    return False


def _flat(schema: Any) -> bool:
    """A record whose fields hold no record: primitives, and arrays, maps, unions, enums
    and fixed of them (a named type it does not define itself could be a record)."""
    if not isinstance(schema, dict) or schema.get("type") != "record":
        return False
    named: set[str] = set()

    def plain(node: Any) -> bool:  # noqa: PLR0911 - one return per schema kind
        if isinstance(node, str):
            return node in _PRIMITIVES or node in named
        if isinstance(node, list):
            return all(plain(n) for n in node)
        if not isinstance(node, dict):
            return False
        kind = node.get("type")
        if kind in {"enum", "fixed"}:
            named.add(str(node.get("name")))
            return True
        if kind == "array":
            return plain(node.get("items"))
        if kind == "map":
            return plain(node.get("values"))
        return isinstance(kind, str) and kind in _PRIMITIVES

    return all(plain(f.get("type")) for f in schema.get("fields", []))
