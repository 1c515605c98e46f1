"""The optional faster Avro codec: cavro (``pip install 'streamkit[cavro]'``), where it
gives exactly what fastavro gives.

fastavro stays the codec of record: cavro is used only on the hot path (a record written
with the topic's current contract, or written with it) and only for contracts whose
values the two libraries represent alike: records, enums, arrays, maps, unions, fixed and
the primitive types, no logical types (the two differ there: UUID objects or strings,
time zones). Anything cavro refuses goes through fastavro again, which then says what is
wrong. Byte-for-byte identical output is tested (``tests/unit/contracts``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

__all__ = ["fast_codec"]

Codec = tuple[Callable[[bytes], Any], Callable[[Any], bytes]]


def fast_codec(schema_json: str) -> Codec | None:
    """``(decode, encode)`` of the schema body by cavro, or None (cavro missing, or the
    schema has a logical type)."""
    try:
        import cavro  # noqa: PLC0415 - optional extra
    except ImportError:
        return None
    if _logical(orjson.loads(schema_json)):
        return None
    schema = cavro.Schema(schema_json, record_decodes_to_dict=True,
                          record_allow_extra_fields=False)  # fmt: skip
    return schema.binary_decode, schema.binary_encode


def _logical(node: Any) -> bool:
    if isinstance(node, dict):
        return "logicalType" in node or any(_logical(v) for v in node.values())
    if isinstance(node, list):
        return any(_logical(v) for v in node)
    return False
