"""The in-memory engine: an App's processors run in-process, without Kafka.

It is a test tool (like Kafka Streams' TopologyTestDriver), not a substitute for Kafka:
records go through the same :class:`~streamkit.runtime.pipeline.Pipeline` as on a broker,
so contracts are enforced, but there are no partitions to balance and nothing to commit.
Outputs that are inputs of other processors of the app are processed in turn.
"""

from __future__ import annotations

import time
import zlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from streamkit.app import App
from streamkit.runtime.failure import FailureHandler
from streamkit.runtime.pipeline import Pipeline
from streamkit.settings import Settings

__all__ = ["MemoryEngine", "StoredRecord"]

_MAX_HOPS = 10_000
Headers = Sequence[tuple[str, bytes | None]]


@dataclass(frozen=True)
class StoredRecord:
    """A record as the memory engine keeps it (raw bytes, like a broker would)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()


@dataclass
class _Log:
    records: list[StoredRecord] = field(default_factory=list)
    next_offset: dict[int, int] = field(default_factory=dict)


class MemoryEngine:
    """Topics as in-memory logs, and the app's pipeline run on every appended record."""

    def __init__(
        self,
        app: App,
        settings: Settings | None = None,
        failure_handler: FailureHandler | None = None,
    ) -> None:
        self.pipeline = Pipeline(app, settings, failure_handler, memory_stores=True)
        self.app = app
        self._topics = app.all_topics()
        self._logs: dict[str, _Log] = {name: _Log() for name in self._topics}
        self.filtered: list[tuple[str, StoredRecord]] = []
        self.waits: list[tuple[str, int, float]] = []
        """(processor, failed attempt, seconds it would have waited) per retry."""

    def append(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None = None,
        timestamp: int | None = None,
    ) -> StoredRecord:
        """Append a raw record to ``topic`` and run everything downstream of it.

        Failure decisions are carried out at once: blocking retries re-run the failed
        processors (``self.waits`` records each delay instead of sleeping), retry-topic
        records are processed as soon as they are appended, dead letters are appended to
        the dead-letter (or parked) topic.
        """
        first = self._store(topic, key, value, headers, timestamp)
        pending = deque([first])
        hops = 0
        while pending:
            record = pending.popleft()
            hops += 1
            if hops > _MAX_HOPS:
                raise RuntimeError(f"more than {_MAX_HOPS} records from one input: a cycle?")
            self._run(record, pending)
        return first

    def _run(self, record: StoredRecord, pending: deque[StoredRecord]) -> None:
        def sink(
            out_topic: str,
            out_key: bytes | None,
            out_value: bytes | None,
            out_headers: Headers | None,
            out_timestamp: int,
            out_partition: int = -1,
        ) -> None:
            stored = self._store(
                out_topic, out_key, out_value, out_headers, out_timestamp, out_partition
            )
            pending.append(stored)

        topic, partition, offset = record.topic, record.partition, record.offset
        timestamp, headers = record.timestamp, record.headers
        attempt, only = 1, None
        origin = (
            self.pipeline.retry_origin(headers) if topic in self.pipeline.retry_topics else None
        )
        if origin is not None:
            topic, partition, offset = origin.topic, origin.partition, origin.offset
            timestamp, headers = origin.timestamp, tuple(origin.headers)
            attempt, only = origin.attempt, frozenset({origin.processor})
            self.waits.append(
                (origin.processor, attempt - 1, max(0.0, origin.due_ms / 1000 - time.time()))
            )
        specs = self.pipeline.by_input.get(topic, [])
        while True:
            outcome = self.pipeline.process(
                topic, partition, offset, timestamp, record.key, record.value, headers, sink,
                attempt=attempt, only=only,
            )  # fmt: skip
            if specs and outcome.filtered and attempt == 1:
                self.filtered.append((record.topic, record))
            for failure in outcome.dead:
                dead = self.pipeline.dead_letter_record(
                    failure, record.key, record.value, headers, timestamp, outcome.extra_headers
                )
                self._store(*dead, None)
            for failure, retry_topic, delay in outcome.forward:
                forwarded = self.pipeline.retry_record(
                    failure, retry_topic, delay, record.key, record.value, headers, timestamp
                )
                pending.append(self._store(*forwarded, None))
            if not outcome.retry:
                return
            for processor, delay in outcome.retry.items():
                self.waits.append((processor, attempt, delay))
            attempt, only = attempt + 1, frozenset(outcome.retry)

    def _store(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None,
        timestamp: int | None,
        partition: int = -1,
    ) -> StoredRecord:
        log = self._logs.get(topic)
        if log is None:
            raise KeyError(f"topic {topic} is not declared by app {self.app.name}")
        if partition < 0:
            partitions = self._topics[topic].partitions
            partition = zlib.crc32(key) % partitions if key is not None else 0
        offset = log.next_offset.get(partition, 0)
        log.next_offset[partition] = offset + 1
        record = StoredRecord(
            topic,
            partition,
            offset,
            int(time.time() * 1000) if timestamp is None else timestamp,
            key,
            value,
            tuple(headers or ()),
        )
        log.records.append(record)
        return record

    def records(self, topic: str) -> list[StoredRecord]:
        """Every record of ``topic`` in the order they were appended."""
        log = self._logs.get(topic)
        if log is None:
            raise KeyError(f"topic {topic} is not declared by app {self.app.name}")
        return list(log.records)
