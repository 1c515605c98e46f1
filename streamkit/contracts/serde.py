"""Serdes: bytes to events and back, each with one clear error when that fails.

Avro values travel in one of two standard wire formats:

* Avro single-object encoding (``C3 01`` + the writer schema's CRC-64-AVRO fingerprint,
  little-endian) resolved against the local :class:`SchemaRepository`: the default,
  needing no server.
* The Confluent format (``00`` + 4-byte big-endian schema id) through a Schema Registry
  (:class:`ConfluentAvroSerde`).

Either way the writer schema is resolved to the reader's (the topic's current contract),
so a processor on v2 of a contract reads v1 events. Schemas are parsed once, when the
serde is made; nothing is parsed per message.
"""

from __future__ import annotations

import contextlib
import struct
import warnings
from collections.abc import Callable
from io import BytesIO
from typing import Any, Protocol, runtime_checkable

import orjson
from fastavro import schemaless_reader, schemaless_writer
from fastavro.schema import parse_schema
from fastavro.validation import ValidationError, validate

from streamkit.contracts._cavro import fast_codec
from streamkit.contracts._strict import unknown_field_checker
from streamkit.contracts.repository import Contract, SchemaRepository
from streamkit.errors import ConfigError, ContractError, SerializationError

__all__ = [
    "AvroSerde",
    "BytesSerde",
    "ConfluentAvroSerde",
    "JsonContractSerde",
    "JsonSerde",
    "Serde",
    "StringSerde",
    "registry_client",
]

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
CONFLUENT_MAGIC = b"\x00"
_ID = struct.Struct(">I")


@runtime_checkable
class Serde(Protocol):
    """Turns bytes into an event and back. ``name`` describes it in error messages."""

    name: str

    def encode(self, value: Any) -> bytes:
        """Bytes for ``value``; raises :class:`SerializationError` (or ContractError)."""
        ...

    def decode(self, data: bytes) -> Any:
        """The event in ``data``; raises :class:`SerializationError`."""
        ...


class BytesSerde:
    """Raw bytes, unchanged."""

    name = "bytes"

    def encode(self, value: Any) -> bytes:
        if not isinstance(value, (bytes, bytearray)):
            raise SerializationError(f"expected bytes, got {type(value).__name__}", schema="bytes")
        return bytes(value)

    def decode(self, data: bytes) -> Any:
        return data


class StringSerde:
    """UTF-8 text (the default for keys). Numbers are written as their decimal text."""

    name = "string"

    def encode(self, value: Any) -> bytes:
        if isinstance(value, str):
            return value.encode("utf-8")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value).encode("ascii")
        if isinstance(value, bytes):
            return value
        raise SerializationError(f"expected text, got {type(value).__name__}", schema="string")

    def decode(self, data: bytes) -> Any:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SerializationError(f"not UTF-8 text: {exc}", schema="string") from exc


class JsonSerde:
    """JSON (orjson): any JSON value."""

    name = "json"

    def encode(self, value: Any) -> bytes:
        try:
            return orjson.dumps(value)
        except TypeError as exc:
            raise SerializationError(f"cannot encode as JSON: {exc}", schema="json") from exc

    def decode(self, data: bytes) -> Any:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise SerializationError(f"malformed JSON: {exc}", schema="json") from exc


def _write(
    contract: Contract,
    value: Any,
    header: bytes = b"",
    unknown: Callable[[Any], str | None] | None = None,
) -> bytes:
    """``value`` in Avro after ``header``; a field the contract lacks is refused (fastavro
    would drop it silently), and a violation names the field."""
    if unknown is not None:
        extra = unknown(value)
        if extra is not None:
            raise ContractError(
                f"event violates the contract: field {extra} is not in it", schema=contract.name
            )
    buffer = BytesIO()
    buffer.write(header)
    try:
        schemaless_writer(buffer, contract.parsed, value)
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
        raise ContractError(
            f"event violates the contract: {_explain(contract, value, exc)}", schema=contract.name
        ) from exc
    return buffer.getvalue()


def _explain(contract: Contract, value: Any, error: Exception) -> str:
    """What is wrong, naming the field (fastavro's writer often does not: "'Z' is not in
    list" for an enum)."""
    try:
        validate(value, contract.parsed, raise_errors=True)
    except ValidationError as invalid:
        if invalid.errors:
            return str(invalid.errors[0])[:500]
    except Exception:  # noqa: BLE001, S110 - the writer's own words below
        pass
    return str(error)


def _read(data: bytes, start: int, writer: Contract, reader: Contract) -> Any:
    stream = BytesIO(data)
    stream.seek(start)
    try:
        if writer is reader:
            return schemaless_reader(stream, writer.parsed, None)
        return schemaless_reader(stream, writer.parsed, reader.parsed)
    except Exception as exc:
        raise SerializationError(
            f"undecodable Avro body written with {writer.name} v{writer.version or 'current'}: "
            f"{type(exc).__name__}: {exc}",
            schema=reader.name,
        ) from exc


class JsonContractSerde:
    """JSON checked against an Avro contract both ways (``value="json:Contract"``): what
    other writers put on a topic as JSON (Debezium's outbox router), held to the app's
    contract. A field the contract lacks, or a value of the wrong type, is a
    :class:`ContractError` naming the field."""

    def __init__(self, repository: SchemaRepository, schema: str) -> None:
        self.contract = repository.get(schema)
        self.name = f"json:{self.contract.name}"
        self._unknown = unknown_field_checker(self.contract.parsed)

    def _check(self, value: Any) -> Any:
        extra = None if self._unknown is None else self._unknown(value)
        if extra is not None:
            raise ContractError(
                f"event violates the contract: field {extra} is not in it",
                schema=self.contract.name,
            )
        try:
            validate(value, self.contract.parsed, raise_errors=True)
        except ValidationError as invalid:
            why = str(invalid.errors[0])[:500] if invalid.errors else str(invalid)
            raise ContractError(
                f"event violates the contract: {why}", schema=self.contract.name
            ) from None
        return value

    def encode(self, value: Any) -> bytes:
        return orjson.dumps(self._check(value))

    def decode(self, data: bytes) -> Any:
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise SerializationError(f"malformed JSON: {exc}", schema=self.name) from exc
        return self._check(value)


class AvroSerde:
    """Avro single-object encoding resolved against the local schema repository."""

    def __init__(self, repository: SchemaRepository, schema: str, *, fast: bool = True) -> None:
        self.repository = repository
        self.contract = repository.get(schema)
        self.name = f"avro:{self.contract.name}"
        self._header = SINGLE_OBJECT_MAGIC + self.contract.fingerprint
        self._unknown = unknown_field_checker(self.contract.parsed)
        self._fast = fast_codec(self.contract.schema_json) if fast else None

    def encode(self, value: Any) -> bytes:
        fast = self._fast
        if fast is not None:
            try:
                body = fast.encode(value)
            except Exception:  # noqa: BLE001, S110 - fastavro below says what went wrong
                pass
            else:  # unknown fields refused: by cavro, or by this check (see FastCodec)
                fields = fast.fields
                if fields is None or (
                    isinstance(value, dict)
                    and (len(value) == len(fields) if fast.complete else value.keys() <= fields)
                ):
                    return self._header + body
        return _write(self.contract, value, self._header, self._unknown)

    def decode(self, data: bytes) -> Any:
        if data.startswith(self._header):  # written with the current schema: the hot path
            try:
                if self._fast is not None:
                    return self._fast.decode(data[10:])
                stream = BytesIO(data)
                stream.seek(10)
                return schemaless_reader(stream, self.contract.parsed, None)
            except Exception:  # noqa: BLE001 - _read below says what went wrong
                return _read(data, 10, self.contract, self.contract)
        if data[:2] != SINGLE_OBJECT_MAGIC or len(data) < 10:
            raise SerializationError(
                f"not Avro single-object encoded (starts {data[:2].hex() or 'empty'}, "
                "expected c301)",
                schema=self.contract.name,
            )
        fingerprint = data[2:10]
        if fingerprint == self.contract.fingerprint:
            writer = self.contract
        else:
            found = self.repository.by_fingerprint(fingerprint)
            if found is None:
                raise SerializationError(
                    f"unknown schema fingerprint {fingerprint.hex()} (not in schemas/)",
                    schema=self.contract.name,
                )
            writer = found
        return _read(data, 10, writer, self.contract)


def registry_client(url: str) -> Any:
    """A confluent-kafka Schema Registry client; ``mock://`` gives the in-memory one."""
    try:
        with warnings.catch_warnings():  # authlib warns about its own httpx integration
            with contextlib.suppress(ImportError):  # it sets an "always" filter on import
                import authlib.deprecate  # noqa: F401, PLC0415
            warnings.simplefilter("ignore", DeprecationWarning)
            from confluent_kafka.schema_registry import SchemaRegistryClient  # noqa: PLC0415

            return SchemaRegistryClient.new_client({"url": url})
    except Exception as exc:
        scheme = url.partition("://")[0]
        raise ConfigError(
            f"STREAMKIT_SCHEMA_REGISTRY_URL ({scheme}://...) is unusable: {exc}"
        ) from exc


class ConfluentAvroSerde:
    """The Confluent wire format (magic 0 + schema id) through a Schema Registry.

    Writing registers the topic's contract under ``<topic>-value`` (or ``-key``) once and
    caches the id; reading fetches each writer schema id once and caches it parsed.
    """

    def __init__(
        self, client: Any, repository: SchemaRepository, schema: str, subject: str
    ) -> None:
        self.client = client
        self.contract = repository.get(schema)
        self.subject = subject
        self.name = f"avro:{self.contract.name}@registry"
        self._unknown = unknown_field_checker(self.contract.parsed)
        self._writer_id: int | None = None
        self._header = b""
        self._writers: dict[int, Contract] = {}

    def _register(self) -> bytes:
        from confluent_kafka.schema_registry import Schema  # noqa: PLC0415

        try:
            schema_id = int(
                self.client.register_schema(self.subject, Schema(self.contract.schema_json, "AVRO"))
            )
        except Exception as exc:
            raise SerializationError(
                f"cannot register {self.contract.name} under subject {self.subject}: {exc}",
                schema=self.contract.name,
            ) from exc
        self._writer_id = schema_id
        self._writers[schema_id] = self.contract
        self._header = CONFLUENT_MAGIC + _ID.pack(schema_id)
        return self._header

    def encode(self, value: Any) -> bytes:
        header = self._header or self._register()
        return _write(self.contract, value, header, self._unknown)

    def _writer(self, schema_id: int) -> Contract:
        writer = self._writers.get(schema_id)
        if writer is not None:
            return writer
        try:
            registered = self.client.get_schema(schema_id)
        except Exception as exc:
            raise SerializationError(
                f"unknown schema id {schema_id} in the Schema Registry ({exc})",
                schema=self.contract.name,
            ) from exc
        try:
            parsed = parse_schema(orjson.loads(registered.schema_str))
        except Exception as exc:
            raise SerializationError(
                f"schema id {schema_id} is not a usable Avro schema: {exc}",
                schema=self.contract.name,
            ) from exc
        name = parsed.get("name", "?") if isinstance(parsed, dict) else str(parsed)
        writer = Contract(name, parsed, b"", registered.schema_str, schema_id, self.contract.source)
        self._writers[schema_id] = writer
        return writer

    def decode(self, data: bytes) -> Any:
        if data[:1] != CONFLUENT_MAGIC or len(data) < 5:
            raise SerializationError(
                f"not in the Confluent wire format (starts {data[:1].hex() or 'empty'}, "
                "expected 00 + schema id)",
                schema=self.contract.name,
            )
        (schema_id,) = _ID.unpack_from(data, 1)
        writer = self._writer(schema_id)
        if schema_id == self._writer_id:
            writer = self.contract
        return _read(data, 5, writer, self.contract)
