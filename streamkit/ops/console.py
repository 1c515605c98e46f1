"""JSON lines to and from Kafka records: the engine of ``streamkit produce | consume``.

One line is one record::

    {"key": "c-1", "value": {"id": 1}, "headers": [["source", "web"]], "partition": 0}

``value`` is any JSON value (``null`` produces a tombstone); ``key`` and header values
are strings. Bytes that are not UTF-8 travel as ``{"b64": "..."}``. Consumed lines also
carry ``topic``, ``partition``, ``offset`` and ``timestamp`` (milliseconds).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
)
from confluent_kafka import TopicPartition as KafkaTopicPartition

from streamkit.errors import KafkaOperationError, SerializationError
from streamkit.records import message_headers

__all__ = [
    "ConsoleRecord",
    "consume_records",
    "line_to_record",
    "produce_records",
    "record_to_line",
]

ValueEncoder = Callable[[Any], bytes | None]
ValueDecoder = Callable[[bytes], Any]


@dataclass(frozen=True)
class ConsoleRecord:
    """A record as the console commands see it: raw bytes plus coordinates."""

    value: bytes | None
    key: bytes | None = None
    headers: tuple[tuple[str, bytes | None], ...] = ()
    partition: int | None = None
    topic: str = ""
    offset: int = -1
    timestamp: int = -1


def _text_or_b64(raw: bytes | None) -> str | dict[str, str] | None:
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(raw).decode("ascii")}


def _bytes_of(field: str, value: Any, where: str) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
        return base64.b64decode(value["b64"], validate=True)
    raise SerializationError(f'{where}: {field} must be a string, null or {{"b64": ...}}')


def json_value(value: Any) -> bytes | None:
    """Default value encoder: JSON bytes; ``None`` is a tombstone; ``{"b64"}`` is raw bytes."""
    if value is None:
        return None
    if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
        return base64.b64decode(value["b64"], validate=True)
    return orjson.dumps(value)


def json_or_text(raw: bytes) -> Any:
    """Default value decoder: JSON when the bytes are JSON, else text, else ``{"b64"}``."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _text_or_b64(raw)


def line_to_record(
    line: bytes | str, where: str, *, value_only: bool = False, encode: ValueEncoder = json_value
) -> ConsoleRecord:
    """Parse one JSON line into a record; ``where`` (for example ``stdin:3``) names it in errors."""
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise SerializationError(f"{where}: not JSON ({exc})") from exc
    if value_only:
        return ConsoleRecord(value=encode(doc))
    if not isinstance(doc, dict) or "value" not in doc:
        raise SerializationError(
            f'{where}: expected an object with a "value" field (or use --value-only)'
        )
    unknown = set(doc) - {"key", "value", "headers", "partition", "topic", "offset", "timestamp"}
    if unknown:
        raise SerializationError(f"{where}: unknown fields {sorted(unknown)}")
    raw_headers = doc.get("headers") or []
    if isinstance(raw_headers, dict):
        raw_headers = list(raw_headers.items())
    if not isinstance(raw_headers, list) or not all(
        isinstance(h, list | tuple) and len(h) == 2 and isinstance(h[0], str) for h in raw_headers
    ):
        raise SerializationError(f"{where}: headers must be [[name, value], ...] or an object")
    partition = doc.get("partition")
    if partition is not None and (not isinstance(partition, int) or partition < 0):
        raise SerializationError(f"{where}: partition must be a non-negative integer")
    try:
        value = encode(doc["value"])
    except SerializationError as exc:
        raise SerializationError(f"{where}: {exc}") from exc
    return ConsoleRecord(
        value=value,
        key=_bytes_of("key", doc.get("key"), where),
        headers=tuple((name, _bytes_of("header value", v, where)) for name, v in raw_headers),
        partition=partition,
    )


def record_to_line(record: ConsoleRecord, decode: ValueDecoder = json_or_text) -> bytes:
    """One JSON line for a consumed record."""
    doc: dict[str, Any] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp,
        "key": _text_or_b64(record.key),
        "value": None if record.value is None else decode(record.value),
        "headers": [[name, _text_or_b64(value)] for name, value in record.headers],
    }
    return orjson.dumps(doc)


def produce_records(
    config: Mapping[str, Any], topic: str, records: Iterable[ConsoleRecord], timeout: float = 30.0
) -> int:
    """Produce ``records`` and wait for every delivery report; return how many were acked.

    Raises :class:`KafkaOperationError` naming the first failed delivery.
    """
    producer = Producer({"enable.idempotence": True, "acks": "all", "linger.ms": 5, **config})
    _require_topic(producer.list_topics(topic, timeout=10).topics.get(topic), topic)
    failures: list[str] = []
    acked = 0

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        nonlocal acked
        if err is not None:
            failures.append(f"{msg.topic()}: {err.str()}")
        else:
            acked += 1

    for count, record in enumerate(records, start=1):
        kwargs: dict[str, Any] = {
            "value": record.value,
            "key": record.key,
            "on_delivery": on_delivery,
        }
        if record.headers:
            kwargs["headers"] = list(record.headers)
        if record.partition is not None:
            kwargs["partition"] = record.partition
        while True:
            try:
                producer.produce(topic, **kwargs)
                break
            except BufferError:
                producer.poll(0.1)
            except KafkaException as exc:
                raise KafkaOperationError(f"producing to {topic} failed: {exc}") from exc
        if count % 1000 == 0:
            producer.poll(0)
    remaining = producer.flush(timeout)
    if remaining:
        raise KafkaOperationError(
            f"{remaining} records to {topic} were not acknowledged within {timeout:.0f}s"
        )
    if failures:
        raise KafkaOperationError(
            f"{len(failures)} records failed to reach {topic}; first: {failures[0]}"
        )
    return acked


def consume_records(
    config: Mapping[str, Any],
    topic: str,
    *,
    from_beginning: bool = False,
    max_records: int | None = None,
    idle_timeout: float | None = None,
) -> Iterator[ConsoleRecord]:
    """Read ``topic`` (all partitions, no consumer group) from its start or its end.

    Stops after ``max_records`` records or after ``idle_timeout`` seconds without one.
    """
    consumer = Consumer(
        {
            "group.id": "streamkit-console",  # required by librdkafka; never joined or committed
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            **config,
        }
    )
    try:
        info = _require_topic(consumer.list_topics(topic, timeout=10).topics.get(topic), topic)
        start = OFFSET_BEGINNING if from_beginning else OFFSET_END
        consumer.assign([KafkaTopicPartition(topic, p, start) for p in sorted(info.partitions)])
        seen = 0
        last = time.monotonic()
        while max_records is None or seen < max_records:
            want = 500 if max_records is None else min(500, max_records - seen)
            batch = consumer.consume(num_messages=want, timeout=0.2)
            if not batch:
                if idle_timeout is not None and time.monotonic() - last >= idle_timeout:
                    return
                continue
            last = time.monotonic()
            for msg in batch:
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise KafkaOperationError(f"consuming {topic} failed: {error.str()}")
                seen += 1
                yield _console_record(msg)
    finally:
        consumer.close()


def _require_topic(info: Any, topic: str) -> Any:
    """The topic's metadata, or a clear error when the topic does not exist."""
    if info is None or info.error is not None or not info.partitions:
        if info is not None and info.error is not None:
            if info.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise KafkaOperationError(_missing(topic))
            raise KafkaOperationError(f"topic {topic}: {info.error.str()}")
        raise KafkaOperationError(_missing(topic))
    return info


def _missing(topic: str) -> str:
    return (
        f"topic {topic} does not exist (create it with "
        f"`streamkit topics create --topic {topic} --partitions N`)"
    )


def _console_record(msg: Message) -> ConsoleRecord:
    headers = tuple(message_headers(msg))
    return ConsoleRecord(
        value=msg.value(),
        key=msg.key(),
        headers=headers,
        partition=msg.partition(),
        topic=msg.topic() or "",
        offset=msg.offset() or 0,
        timestamp=msg.timestamp()[1],
    )
