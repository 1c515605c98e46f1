"""Record types every floor shares: a partition's key, headers, a consumed record.

A consumed record is read through the same accessor methods as
``confluent_kafka.Message`` (:class:`Message`), so the Kafka engine hands librdkafka's
own objects to the runtime without copying them, and the in-memory engine, retry records
and tests hand it a :class:`Record`.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "TP",
    "Event",
    "Headers",
    "Message",
    "Record",
    "key_partition",
    "message_headers",
    "record_fields",
]

TP = tuple[str, int]
"""A topic partition: ``(topic, partition)``."""

Headers = Sequence[tuple[str, bytes | None]]
"""A record's headers in order, as (name, bytes) pairs; a value may be None."""


class Message(Protocol):
    """What the runtime reads of a consumed record (``confluent_kafka.Message`` has it)."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def timestamp(self) -> tuple[int, int]: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def headers(self) -> Any: ...
    def error(self) -> Any: ...


class Record:
    """A consumed record that is not librdkafka's: kept by the in-memory engine, or a
    retry record seen at its origin's coordinates. Read like a :class:`Message`."""

    __slots__ = ("_headers", "_key", "_offset", "_partition", "_timestamp", "_topic", "_value")

    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        timestamp: int,
        key: bytes | None,
        value: bytes | None,
        headers: Headers = (),
    ) -> None:
        self._topic = topic
        self._partition = partition
        self._offset = offset
        self._timestamp = timestamp
        self._key = key
        self._value = value
        self._headers = tuple(headers)

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return (1, self._timestamp)  # TIMESTAMP_CREATE_TIME, as librdkafka reports it

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> tuple[tuple[str, bytes | None], ...]:
        return self._headers

    def error(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"Record({self._topic}[{self._partition}]@{self._offset}, key={self._key!r})"


@dataclass(frozen=True)
class Event:
    """A record decoded with its topic's contract.

    Attributes:
        topic, partition, offset: where it is.
        timestamp: milliseconds since the epoch.
        key: the decoded key (None: no key).
        value: the decoded value (None: a tombstone).
        headers: the headers by name (the last value of a repeated name).
    """

    topic: str
    partition: int
    offset: int
    key: Any
    value: Any
    headers: dict[str, bytes | None]
    timestamp: int = 0


def message_headers(msg: Message) -> list[tuple[str, bytes | None]]:
    """A consumed record's headers as (name, bytes) pairs, in order."""
    raw = msg.headers()
    if not raw:
        return []
    items = raw.items() if isinstance(raw, dict) else raw
    return [(name, value.encode() if isinstance(value, str) else value) for name, value in items]


def key_partition(key: bytes, partitions: int) -> int:
    """The partition librdkafka's default partitioner gives a keyed record (CRC32)."""
    return zlib.crc32(key) % partitions


def record_fields(topic: str, partition: int, offset: int, processor: str = "") -> dict[str, Any]:
    """``extra=`` for a log call about one record (its coordinates and processor)."""
    return {"topic": topic, "partition": partition, "offset": offset, "processor": processor}
