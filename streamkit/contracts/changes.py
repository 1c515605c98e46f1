"""Change data capture: Debezium's change events as typed :class:`Change` objects.

A topic declared ``value="debezium"`` (and ``key="debezium"``) holds what a Debezium
connector writes with Kafka Connect's JSON converter, with or without embedded schemas
(``{"schema": ..., "payload": ...}`` or the payload alone), or records flattened by the
``ExtractNewRecordState`` transform (the row itself, with the ``__op``, ``__table``,
``__lsn``, ``__source_ts_ms`` and ``__deleted`` fields it can add).
``value="debezium+avro"`` reads the Avro converter's records (Confluent wire format) by
their writer schema, from the Schema Registry at ``STREAMKIT_SCHEMA_REGISTRY_URL``.

A processor gets a :class:`Change`: ``op`` (``create``, ``update``, ``delete``, ``read``
for a snapshot row, ``truncate``, ``message``; ``upsert`` for a flattened row that says
no more; ``tombstone`` for the null record Debezium writes after a delete, so that
compaction forgets the key), ``before``, ``after``, ``source`` (``table``, ``lsn``,
``tx_id`` as properties) and ``key`` (a one-column primary key as its value, a
composite one as a dict). ``Emit(topic, change)`` to a ``debezium`` topic writes the
change again (a tombstone as a null value); ``Emit(topic, None)`` writes a tombstone to
any topic.

Debezium writes ``DECIMAL`` columns as base64 bytes unless its connector says
``decimal.handling.mode=string`` (or ``double``), as ``deploy/connect`` configures it.
"""

from __future__ import annotations

import dataclasses
import io
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from streamkit.errors import SerializationError

__all__ = [
    "CHANGE_FORMATS",
    "OPS",
    "Change",
    "ChangeKeySerde",
    "ChangeSerde",
    "parse_change",
    "parse_key",
    "read_json",
    "registry_reader",
]

CHANGE_FORMATS: Final = frozenset({"debezium", "debezium+avro"})
"""The topic formats of change events."""

OPS: Final = {
    "c": "create",
    "u": "update",
    "d": "delete",
    "r": "read",
    "t": "truncate",
    "m": "message",
}
"""Debezium's operation codes, and what :attr:`Change.op` says for them."""

_CODES: Final = {name: code for code, name in OPS.items()}
_FLAT_FIELDS: Final = (
    "__op",
    "__table",
    "__lsn",
    "__source_ts_ms",
    "__deleted",
    "__db",
    "__schema",
    "__txId",
    "__ts_ms",
)


@dataclass(frozen=True, slots=True)
class Change:
    """One change of one row (see the module docstring).

    Attributes:
        op: create, update, delete, read, truncate, message, upsert or tombstone.
        before: the row before the change (None for a create; for an update or delete,
            the whole row only with ``REPLICA IDENTITY FULL``).
        after: the row after it (None for a delete).
        source: where it happened: ``db``, ``schema``, ``table``, ``lsn``, ``txId``,
            ``ts_ms``, ``snapshot``...
        ts_ms: when the connector saw it.
        transaction: ``id``, ``total_order``, ``data_collection_order`` when the
            connector marks transactions.
        key: the record key (a one-column key as its value).
        flattened: it came flattened by ``ExtractNewRecordState``.
    """

    op: str
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    source: dict[str, Any] = field(default_factory=dict)
    ts_ms: int | None = None
    transaction: dict[str, Any] | None = None
    key: Any = None
    flattened: bool = False

    @property
    def table(self) -> str | None:
        """The table it happened in."""
        return self.source.get("table")

    @property
    def lsn(self) -> int | None:
        """The PostgreSQL log sequence number of the change."""
        return self.source.get("lsn")

    @property
    def tx_id(self) -> Any:
        """The database transaction's id."""
        return self.source.get("txId")

    @property
    def row(self) -> dict[str, Any] | None:
        """The row as it is now (``after``), or as it was when deleted (``before``)."""
        return self.after if self.after is not None else self.before

    @property
    def is_delete(self) -> bool:
        """Whether the row is gone (a delete, or the tombstone after it)."""
        return self.op in {"delete", "tombstone"}

    @property
    def is_tombstone(self) -> bool:
        """Whether this is the null record after a delete."""
        return self.op == "tombstone"

    def with_key(self, key: Any) -> Change:
        """This change, with its record key."""
        return dataclasses.replace(self, key=key)

    @classmethod
    def tombstone(cls, key: Any) -> Change:
        """The null record of ``key``."""
        return cls("tombstone", key=key)

    def envelope(self) -> dict[str, Any] | None:
        """The change as Debezium's payload (None: a tombstone)."""
        if self.is_tombstone:
            return None
        return {
            "before": self.before,
            "after": self.after,
            "source": self.source,
            "op": _CODES.get(self.op, self.op),
            "ts_ms": self.ts_ms,
            "transaction": self.transaction,
        }


def parse_change(doc: Any) -> Change:
    """A :class:`Change` from a decoded record value (an envelope, with or without
    schema, or a flattened row). Raises :class:`SerializationError` on anything else."""
    if isinstance(doc, dict) and "payload" in doc and "schema" in doc:
        doc = doc["payload"]
    if not isinstance(doc, dict):
        raise SerializationError(
            f"a change event is a JSON object, not {type(doc).__name__}", schema="debezium"
        )
    if "op" in doc and ("after" in doc or "before" in doc):
        op = doc["op"]
        if op not in OPS:
            raise SerializationError(f"unknown Debezium op {op!r}", schema="debezium")
        return Change(
            op=OPS[op],
            before=doc.get("before"),
            after=doc.get("after"),
            source=doc.get("source") or {},
            ts_ms=doc.get("ts_ms"),
            transaction=doc.get("transaction"),
        )
    return _flattened(doc)


def _flattened(doc: dict[str, Any]) -> Change:
    """A row flattened by ``ExtractNewRecordState`` (its added fields read and removed)."""
    row = {k: v for k, v in doc.items() if k not in _FLAT_FIELDS}
    code = doc.get("__op")
    deleted = str(doc.get("__deleted", "false")).lower() == "true"
    op = "delete" if deleted else OPS.get(str(code), "upsert") if code is not None else "upsert"
    source = {
        name: doc[f"__{name}"]
        for name in ("table", "lsn", "db", "schema", "txId")
        if f"__{name}" in doc
    }
    if "__source_ts_ms" in doc:
        source["ts_ms"] = doc["__source_ts_ms"]
    before, after = (row, None) if op == "delete" else (None, row)
    return Change(op, before, after, source, doc.get("__ts_ms"), None, flattened=True)


def parse_key(doc: Any) -> Any:
    """A record key: its payload (with or without schema); a one-column key is its value."""
    if isinstance(doc, dict) and "payload" in doc and "schema" in doc:
        doc = doc["payload"]
    if isinstance(doc, dict) and len(doc) == 1:
        return next(iter(doc.values()))
    return doc


class ChangeSerde:
    """Values of a change topic: records decoded by ``read`` (JSON, or Avro by writer
    schema) into :class:`Change`; a change (or a row) written back as JSON."""

    def __init__(self, read: Callable[[bytes], Any], name: str = "debezium") -> None:
        self.read = read
        self.name = name

    def encode(self, value: Any) -> bytes:
        """A :class:`Change` as Debezium's payload, or any other JSON value as it is."""
        doc = value.envelope() if isinstance(value, Change) else value
        try:
            return orjson.dumps(doc)
        except TypeError as exc:
            raise SerializationError(f"cannot encode as JSON: {exc}", schema=self.name) from exc

    def decode(self, data: bytes) -> Change:
        return parse_change(self.read(data))


class ChangeKeySerde:
    """Keys of a change topic: the primary key (one column: its value)."""

    def __init__(self, read: Callable[[bytes], Any], name: str = "debezium") -> None:
        self.read = read
        self.name = name

    def encode(self, value: Any) -> bytes:
        return orjson.dumps(value)

    def decode(self, data: bytes) -> Any:
        return parse_key(self.read(data))


def read_json(data: bytes) -> Any:
    """A JSON record (Kafka Connect's JsonConverter)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise SerializationError(f"malformed JSON: {exc}", schema="debezium") from exc


def registry_reader(client: Any) -> Callable[[bytes], Any]:
    """A reader of Confluent-wire-format Avro records (Kafka Connect's AvroConverter) by
    their writer schema, fetched once per id from the Schema Registry ``client``."""
    from fastavro import parse_schema, schemaless_reader  # noqa: PLC0415 - only for Avro

    parsed: dict[int, Any] = {}

    def read(data: bytes) -> Any:
        if len(data) < 5 or data[0] != 0:
            raise SerializationError(
                "not a Confluent-wire-format Avro record (magic byte 0, schema id)",
                schema="debezium+avro",
            )
        (schema_id,) = struct.unpack(">I", data[1:5])
        if schema_id not in parsed:
            try:
                schema = client.get_schema(schema_id)
            except Exception as exc:  # noqa: BLE001 - the registry client's own errors
                why = f"schema id {schema_id} is unknown to the Schema Registry: {exc}"
                raise SerializationError(why, schema="debezium+avro") from None
            parsed[schema_id] = parse_schema(orjson.loads(schema.schema_str))
        try:
            return schemaless_reader(io.BytesIO(data[5:]), parsed[schema_id], None)
        except Exception as exc:  # noqa: BLE001 - truncated or corrupt bytes
            raise SerializationError(
                f"malformed Avro record (schema id {schema_id}): {exc}", schema="debezium+avro"
            ) from None

    return read
