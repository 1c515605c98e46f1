"""Tables in the Kafka worker: their topics read into the pipeline's table data.

One consumer per worker, outside the group (it is assigned partitions, it never joins nor
commits), reads every table topic: a global table's partitions from the start, before the
worker takes its first record; a partitioned table's partition ``p`` when the worker is
assigned partition ``p`` of a stream that reads the table, to its end before that
partition's first record (inside the assignment), dropped when the worker no longer holds
such a partition. Between batches the worker applies what arrived since (``poll``), so
lookups see updates within a loop iteration. A table topic is its own changelog: a
restarted worker reads it again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from streamkit.engines.kafka.clients import watermarks
from streamkit.errors import ConfigError, KafkaOperationError, SerializationError
from streamkit.records import TP
from streamkit.runtime.pipeline import Pipeline
from streamkit.settings import Settings
from streamkit.state.partition import restore_progress

__all__ = ["TableFeed"]

_STALL_S = 60.0


class TableFeed:
    """Keeps the pipeline's tables filled from their topics (see the module docstring)."""

    def __init__(
        self, settings: Settings, pipeline: Pipeline, log: logging.Logger, *, exactly_once: bool
    ) -> None:
        self.pipeline = pipeline
        self.log = log
        self.tables = pipeline.tables
        self.by_topic = pipeline.tables_of
        self.readers: dict[str, set[str]] = {}  # stream topic -> partitioned tables it reads
        for spec in pipeline.app.processors:
            for lookup in spec.tables:
                if not lookup.table.global_:
                    self.readers.setdefault(spec.input, set()).add(lookup.table.name)
        self.skipped = 0
        self._consumer: Consumer | None = None
        if self.tables:
            self._consumer = Consumer(
                settings.client_config(
                    for_client="consumer",
                    **{
                        "group.id": f"{pipeline.app.group_id}-tables",
                        "enable.auto.commit": False,
                        "enable.auto.offset.store": False,
                        "isolation.level": "read_committed" if exactly_once else "read_uncommitted",
                        "fetch.wait.max.ms": 50,
                    },
                )
            )
        self._held: set[TP] = set()

    def check(self, partitions: dict[str, int]) -> None:
        """Refuse tables not co-partitioned with their streams, by the topics' real
        partition counts (``partitions``: topic -> count)."""
        for stream, names in self.readers.items():
            for name in sorted(names):
                topic = self.tables[name].spec.topic
                if partitions.get(topic) != partitions.get(stream):
                    raise ConfigError(
                        f"table {name} is not co-partitioned with {stream}: {topic} has "
                        f"{partitions.get(topic)} partitions, {stream} "
                        f"{partitions.get(stream)}; give them the same count or declare the "
                        "table global_=True"
                    )

    def start(self, partitions: dict[str, int], *, everything: bool = False) -> None:
        """Read every global table (``everything``: every table) to its end, with
        progress, before the first record; ``partitions``: topic -> partition count."""
        wanted = [
            (data.spec.topic, p)
            for data in self.tables.values()
            if data.spec.global_ or everything
            for p in range(partitions.get(data.spec.topic, 0))
        ]
        if wanted:
            self._catch_up(wanted)

    def assigned(self, partitions: Iterable[TP]) -> None:
        """Stream partitions assigned: read the matching table partitions to their end."""
        wanted = [
            (self.tables[name].spec.topic, p)
            for topic, p in partitions
            for name in sorted(self.readers.get(topic, ()))
        ]
        if wanted:
            self._catch_up(wanted)

    def revoked(self, partitions: Iterable[TP], still: Iterable[TP]) -> None:
        """Stream partitions revoked: drop the table partitions no held stream needs."""
        needed = {
            (self.tables[name].spec.topic, p)
            for topic, p in still
            for name in self.readers.get(topic, ())
        }
        gone = {
            (self.tables[name].spec.topic, p)
            for topic, p in partitions
            for name in self.readers.get(topic, ())
        } - needed
        gone = {tp for tp in gone & self._held if not self._global(tp[0])}
        if not gone or self._consumer is None:
            return
        self._consumer.incremental_unassign([TopicPartition(t, p) for t, p in gone])
        self._held -= gone
        for topic, p in gone:
            for data in self.by_topic.get(topic, []):
                if not data.spec.global_:
                    data.drop(p)

    def _global(self, topic: str) -> bool:
        return any(data.spec.global_ for data in self.by_topic.get(topic, []))

    def poll(self) -> None:
        """Apply the table records that arrived since the last call (never waits)."""
        if self._consumer is not None and self._held:
            for msg in self._consumer.consume(1000, 0):
                self._apply(msg)

    def close(self) -> None:
        """Close the consumer."""
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    # -- reading ----------------------------------------------------------------------------
    def _catch_up(self, wanted: list[TP]) -> None:
        consumer = self._consumer
        assert consumer is not None  # noqa: S101 - only tables ask for partitions
        new = [tp for tp in dict.fromkeys(wanted) if tp not in self._held]
        if not new:
            return
        ends: dict[TP, int] = {}
        for topic, p in new:
            for data in self.by_topic[topic]:
                data.hold(p)
            _, ends[(topic, p)] = watermarks(consumer, topic, p)
        consumer.incremental_assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in new])
        self._held.update(new)
        todo = {tp: end for tp, end in ends.items() if end > 0}
        total, done = sum(todo.values()), 0
        began = idle = time.monotonic()
        with restore_progress(f"reading tables {_describe(new)}", total) as advance:
            while todo:
                batch = consumer.consume(1000, 0.2)
                for msg in batch:
                    done += self._apply(msg)
                advance(done)
                for tp in list(todo):
                    (position,) = consumer.position([TopicPartition(*tp)])
                    if position.offset >= todo[tp]:
                        del todo[tp]
                if batch:
                    idle = time.monotonic()
                elif todo and time.monotonic() - idle > _STALL_S:
                    raise KafkaOperationError(
                        f"reading table topic {_describe(list(todo))} stalled before its end"
                    )
        self.log.info(
            "read tables %s: %d records in %.2fs", _describe(new), done, time.monotonic() - began
        )

    def _apply(self, msg: Message) -> int:
        error = msg.error()
        if error is not None:
            if error.fatal():
                raise KafkaOperationError(f"reading {msg.topic()} failed: {error.str()}")
            return 0
        topic = msg.topic() or ""
        try:
            self.pipeline.table_record(
                topic, msg.partition() or 0, msg.offset() or 0, msg.key(), msg.value()
            )
        except SerializationError as exc:
            self.skipped += 1
            self.log.warning("table record skipped (it stays in %s): %s", topic, exc)
        return 1


def _describe(tps: list[TP]) -> str:
    by_topic: dict[str, list[int]] = {}
    for topic, p in tps:
        by_topic.setdefault(topic, []).append(p)
    return ", ".join(f"{t}{sorted(ps)}" for t, ps in sorted(by_topic.items()))
