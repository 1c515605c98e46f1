"""The operator's dead-letter tools: list, show and redrive.

``redrive`` re-publishes dead letters to their source topic (or another) with their
original key, value and headers plus lineage headers (``__streamkit.redrive.count``,
``.from``, ``.processor``); a redriven record runs only the processor that failed it.
Redrive is a cursor: the ``<app>-dlq-redrive`` consumer group remembers the last
redriven record of each DLQ partition, so the next run starts after it
(``from_start=True`` rescans from the beginning).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from streamkit.app import App
from streamkit.engines.kafka.clients import BOUNDED_READ, read_until
from streamkit.errors import KafkaOperationError
from streamkit.failures.dead_letter import (
    REDRIVE_COUNT,
    REDRIVE_FROM,
    REDRIVE_PROCESSOR,
    DeadLetter,
    read_dead_letter,
)
from streamkit.records import TP, message_headers
from streamkit.topology import Topology

__all__ = ["DlqSummary", "Selection", "list_dead_letters", "redrive", "scan"]


@dataclass(frozen=True)
class DlqSummary:
    """One dead-letter (or parked) topic: how many records, oldest and newest failure."""

    topic: str
    source: str
    parked: bool
    records: int
    oldest_ms: int | None
    newest_ms: int | None


@dataclass(frozen=True)
class Selection:
    """Which dead letters to show or redrive (every field optional)."""

    processor: str | None = None
    error: str | None = None
    """An exception class, short or qualified: matches it and its subclasses."""
    since_ms: int | None = None
    max_records: int | None = None

    def matches(self, letter: DeadLetter) -> bool:
        """True when ``letter`` passes every filter that is set."""
        if self.processor is not None and letter.processor != self.processor:
            return False
        if self.error is not None:
            names = letter.error_classes
            if not any(self.error in (name, name.rpartition(".")[2]) for name in names):
                return False
        return self.since_ms is None or letter.failed_at >= self.since_ms


def _consumer(config: Mapping[str, Any], group: str) -> Consumer:
    return Consumer(
        {
            **config,
            "group.id": group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": False,
            # Reads to known ends: a long-polling fetch would add its wait to each read.
            "fetch.wait.max.ms": 20,
            **BOUNDED_READ,
        }
    )


def _extents(consumer: Consumer, topics: list[str]) -> dict[TP, tuple[int, int]]:
    """``(low, high)`` of every non-empty partition of ``topics`` that exist."""
    found: dict[TP, tuple[int, int]] = {}
    metadata = consumer.list_topics(timeout=10).topics
    for topic in topics:
        info = metadata.get(topic)
        if info is None or info.error is not None:
            continue
        for partition in sorted(info.partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            if high > low:
                found[(topic, partition)] = (low, high)
    return found


def list_dead_letters(app: App, config: Mapping[str, Any]) -> list[DlqSummary]:
    """Every DLQ and parked topic of ``app`` with counts and oldest/newest failure times.

    Reads only each partition's first and last record, all partitions at once.
    """
    topology = Topology(app)
    named = [(topology.dlq(s), s, False) for s in topology.inputs()]
    named += [(topology.parked(s), s, True) for s in topology.inputs()]
    consumer = _consumer(config, f"{app.group_id}-dlq-inspect")
    times: dict[str, list[int]] = {}
    try:
        extents = _extents(consumer, [topic for topic, _, _ in named])
        for ends in (
            {tp: (low, low + 1) for tp, (low, _) in extents.items()},
            {tp: (high - 1, high) for tp, (_, high) in extents.items()},
        ):
            for msg in read_until(consumer, ends, stall=30):
                when = _letter(msg).failed_at or msg.timestamp()[1]
                times.setdefault(msg.topic() or "", []).append(when)
    finally:
        consumer.close()
    summaries = []
    for topic, source, parked in named:
        records = sum(high - low for (t, _), (low, high) in extents.items() if t == topic)
        seen = times.get(topic, [])
        oldest, newest = (min(seen), max(seen)) if seen else (None, None)
        summaries.append(DlqSummary(topic, source, parked, records, oldest, newest))
    return summaries


def _letter(msg: Any) -> DeadLetter:
    return read_dead_letter(
        msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value(), message_headers(msg)
    )


def scan(
    app: App,
    config: Mapping[str, Any],
    selection: Selection,
    *,
    topics: list[str] | None = None,
    from_cursor: bool = False,
) -> Iterator[DeadLetter]:
    """Dead letters of ``app`` matching ``selection``, up to the ends seen when it starts.

    With ``from_cursor`` each DLQ is read from the redrive group's committed position.
    """
    topology = Topology(app)
    names = topics or [topology.dlq(source) for source in topology.inputs()]
    consumer = _consumer(config, topology.redrive_group)
    shown = 0
    try:
        extents = _extents(consumer, names)
        if from_cursor and extents:
            parts = [TopicPartition(*tp) for tp in extents]
            for tp in consumer.committed(parts, timeout=10):
                low, high = extents[(tp.topic, tp.partition)]
                if tp.offset >= 0:
                    extents[(tp.topic, tp.partition)] = (max(low, tp.offset), high)
        for msg in read_until(consumer, extents, stall=30):
            letter = _letter(msg)
            if selection.matches(letter):
                yield letter
                shown += 1
                if selection.max_records is not None and shown >= selection.max_records:
                    return
    finally:
        consumer.close()


@dataclass(frozen=True)
class RedrivePlan:
    """What a redrive moved, or would move: counts per (source topic, processor)."""

    counts: dict[tuple[str, str], int]
    executed: bool

    @property
    def total(self) -> int:
        """Records moved (or to move)."""
        return sum(self.counts.values())


def redrive(
    app: App,
    config: Mapping[str, Any],
    selection: Selection,
    *,
    to: str | None = None,
    execute: bool = False,
    from_start: bool = False,
) -> RedrivePlan:
    """Re-publish selected dead letters to their source topic (or ``to``); dry-run unless
    ``execute``. Executing moves the redrive cursor past everything it read."""
    counts: dict[tuple[str, str], int] = {}
    letters = list(scan(app, config, selection, from_cursor=not from_start))
    for letter in letters:
        key = (to or letter.source_topic, letter.processor)
        counts[key] = counts.get(key, 0) + 1
    if not execute:
        return RedrivePlan(counts, executed=False)
    producer = Producer({**config, "enable.idempotence": True, "acks": "all"})
    failures: list[str] = []

    def delivered(err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            failures.append(err.str())

    cursor: dict[tuple[str, int], int] = {}
    for letter in letters:
        headers: list[tuple[str, str | bytes | None]] = [
            (k, v) for k, v in letter.headers if not k.startswith("__streamkit.redrive.")
        ]
        headers.append((REDRIVE_COUNT, str(letter.redrives + 1).encode()))
        headers.append(
            (
                REDRIVE_FROM,
                f"{letter.dlq_topic}/{letter.dlq_partition}/{letter.dlq_offset}".encode(),
            )
        )
        if letter.processor:
            headers.append((REDRIVE_PROCESSOR, letter.processor.encode()))
        # With the original event's timestamp: its event time, and its outputs', are the
        # event's, not the redrive's.
        stamp = letter.error.get("timestamp", "")
        producer.produce(
            to or letter.source_topic,
            letter.value,
            letter.key,
            headers=headers,
            on_delivery=delivered,
            timestamp=int(stamp) if stamp.isdigit() else 0,  # (0: now)
        )
        cursor[(letter.dlq_topic, letter.dlq_partition)] = letter.dlq_offset + 1
    if producer.flush(30) or failures:
        raise KafkaOperationError(
            f"redrive incomplete: {len(failures)} records failed ({failures[:1]}); cursor not moved"
        )
    if cursor:
        consumer = _consumer(config, Topology(app).redrive_group)
        try:
            consumer.commit(
                offsets=[TopicPartition(t, p, o) for (t, p), o in cursor.items()],
                asynchronous=False,
            )
        finally:
            consumer.close()
    return RedrivePlan(counts, executed=True)
