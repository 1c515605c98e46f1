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
from dataclasses import dataclass, field

from streamkit.app import App
from streamkit.runtime.failure import FailureHandler
from streamkit.runtime.pipeline import Pipeline
from streamkit.settings import Settings

__all__ = ["MemoryEngine", "StoredRecord"]

_MAX_HOPS = 10_000


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
        self.pipeline = Pipeline(app, settings, failure_handler)
        self.app = app
        self._logs: dict[str, _Log] = {name: _Log() for name in app.topics}
        self.filtered: list[tuple[str, StoredRecord]] = []

    def append(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | tuple[tuple[str, bytes | None], ...] | None = None,
        timestamp: int | None = None,
    ) -> StoredRecord:
        """Append a raw record to ``topic`` and run everything downstream of it."""
        first = self._store(topic, key, value, headers, timestamp)
        pending = deque([first])
        hops = 0
        while pending:
            record = pending.popleft()
            hops += 1
            if hops > _MAX_HOPS:
                raise RuntimeError(f"more than {_MAX_HOPS} records from one input: a cycle?")

            def sink(
                out_topic: str,
                out_key: bytes | None,
                out_value: bytes | None,
                out_headers: list[tuple[str, bytes]] | None,
                out_timestamp: int,
            ) -> None:
                pending.append(
                    self._store(out_topic, out_key, out_value, out_headers, out_timestamp)
                )

            specs = self.pipeline.by_input.get(record.topic, [])
            outcome = self.pipeline.process(
                record.topic,
                record.partition,
                record.offset,
                record.timestamp,
                record.key,
                record.value,
                record.headers,
                sink,
            )
            if specs and outcome.filtered:
                self.filtered.append((record.topic, record))
        return first

    def _store(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | tuple[tuple[str, bytes | None], ...] | None,
        timestamp: int | None,
    ) -> StoredRecord:
        log = self._logs.get(topic)
        if log is None:
            raise KeyError(f"topic {topic} is not declared by app {self.app.name}")
        partitions = self.app.topics[topic].partitions
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
