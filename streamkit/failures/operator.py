"""The operator's dead-letter tools: list, show and redrive.

``redrive`` re-publishes dead letters to their source topic (or another) with their
original key, value and headers plus lineage headers (``__streamkit.redrive.count``,
``.from``, ``.processor``); a redriven record runs only the processor that failed it.
Redrive is a cursor: the ``<app>-dlq-redrive`` consumer group remembers the last
redriven record of each DLQ partition, so the next run starts after it
(``from_start=True`` rescans from the beginning).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from streamkit.app import App
from streamkit.errors import KafkaOperationError
from streamkit.failures.dead_letter import (
    REDRIVE_COUNT,
    REDRIVE_FROM,
    REDRIVE_PROCESSOR,
    DeadLetter,
    dlq_topic,
    parked_topic,
    read_dead_letter,
)
from streamkit.ops.console import message_headers
from streamkit.ops.offsets import read_until

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
    since_ms: int | None = None
    max_records: int | None = None

    def matches(self, letter: DeadLetter) -> bool:
        """True when ``letter`` passes every filter that is set."""
        if self.processor is not None and letter.processor != self.processor:
            return False
        if self.error is not None:
            name = letter.error_class
            if name != self.error and name.rpartition(".")[2] != self.error:
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
        }
    )


def _partitions(consumer: Consumer, topic: str) -> list[int]:
    info = consumer.list_topics(topic, timeout=10).topics.get(topic)
    if info is None or info.error is not None:
        return []
    return sorted(info.partitions)


def _record_at(consumer: Consumer, topic: str, partition: int, offset: int) -> Any:
    consumer.assign([TopicPartition(topic, partition, offset)])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            return msg
    return None


def list_dead_letters(app: App, config: Mapping[str, Any]) -> list[DlqSummary]:
    """Every DLQ and parked topic of ``app`` with counts and oldest/newest failure times."""
    consumer = _consumer(config, f"{app.group_id}-dlq-inspect")
    summaries = []
    try:
        for source in dict.fromkeys(spec.input for spec in app.processors):
            for topic, parked in (
                (dlq_topic(app.name, source), False),
                (parked_topic(app.name, source), True),
            ):
                records, oldest, newest = 0, None, None
                for partition in _partitions(consumer, topic):
                    low, high = consumer.get_watermark_offsets(
                        TopicPartition(topic, partition), timeout=10
                    )
                    if high <= low:
                        continue
                    records += high - low
                    for offset in (low, high - 1):
                        msg = _record_at(consumer, topic, partition, offset)
                        if msg is None:
                            continue
                        letter = _letter(msg)
                        when = letter.failed_at or msg.timestamp()[1]
                        oldest = when if oldest is None else min(oldest, when)
                        newest = when if newest is None else max(newest, when)
                summaries.append(DlqSummary(topic, source, parked, records, oldest, newest))
    finally:
        consumer.close()
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
    names = topics or [
        dlq_topic(app.name, s) for s in dict.fromkeys(p.input for p in app.processors)
    ]
    consumer = _consumer(config, redrive_group(app))
    shown = 0
    try:
        for topic in names:
            for partition in _partitions(consumer, topic):
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=10
                )
                start = low
                if from_cursor:
                    (committed,) = consumer.committed(
                        [TopicPartition(topic, partition)], timeout=10
                    )
                    start = max(low, committed.offset) if committed.offset >= 0 else low
                for msg in read_until(consumer, {(topic, partition): (start, high)}):
                    letter = _letter(msg)
                    if selection.matches(letter):
                        yield letter
                        shown += 1
                        if selection.max_records is not None and shown >= selection.max_records:
                            return
    finally:
        consumer.close()


def redrive_group(app: App) -> str:
    """The consumer group that remembers how far each DLQ of ``app`` was redriven."""
    return f"{app.group_id}-dlq-redrive"


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
        producer.produce(
            to or letter.source_topic,
            letter.value,
            letter.key,
            headers=headers,
            on_delivery=delivered,
        )
        cursor[(letter.dlq_topic, letter.dlq_partition)] = letter.dlq_offset + 1
    if producer.flush(30) or failures:
        raise KafkaOperationError(
            f"redrive incomplete: {len(failures)} records failed ({failures[:1]}); cursor not moved"
        )
    if cursor:
        consumer = _consumer(config, redrive_group(app))
        try:
            consumer.commit(
                offsets=[TopicPartition(t, p, o) for (t, p), o in cursor.items()],
                asynchronous=False,
            )
        finally:
            consumer.close()
    return RedrivePlan(counts, executed=True)
