"""Shadow replay: the app's tasks over a bounded range of its inputs, aside from the live
group.

The same batch loop and per-partition tasks as the Kafka worker (so a replay settles
records exactly as the live app does), with what must differ for a replay: the consumer
is assigned the range and joins no group, nothing is committed, every output, projection
and dead letter goes to its redirected topic (or nowhere), changelog writes are not
written (the replay's stores live in memory and start empty: replay from the beginning of
the input to rebuild state), tables are read whole as they are now, and a processor's
retry topics become blocking retries with the same delays (a replay reads no retry topic).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition

from streamkit.app import App
from streamkit.engines.kafka.delivery import KafkaChunk
from streamkit.engines.kafka.engine import KafkaEngine
from streamkit.engines.kafka.tables import TableFeed
from streamkit.errors import KafkaOperationError
from streamkit.records import TP, Headers
from streamkit.runtime.outcome import OutRecord, ProduceError
from streamkit.runtime.pipeline import Pipeline
from streamkit.settings import Settings
from streamkit.topology import Role

__all__ = ["ShadowReplay", "ShadowSummary"]


@dataclass
class ShadowSummary:
    """What a shadow replay read and wrote (counts per original topic)."""

    read: int = 0
    emitted: dict[str, int] = field(default_factory=dict)
    dead_lettered: int = 0
    filtered: int = 0
    seconds: float = 0.0
    created: list[str] = field(default_factory=list)


class _ShadowChunk(KafkaChunk):
    """Outputs and dead letters to their redirected topics; changelog writes dropped."""

    __slots__ = ()

    def __call__(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None,
        timestamp: int,
        partition: int = -1,
    ) -> ProduceError | None:
        engine = self._engine
        assert isinstance(engine, ShadowReplay)  # noqa: S101 - only ShadowReplay makes these
        if topic in engine.changelogs:
            return None  # the replay's stores are its own, in memory
        engine.summary.emitted[topic] = engine.summary.emitted.get(topic, 0) + 1
        target = engine.redirect(topic)
        if target is None:
            return None
        return super().__call__(target, key, value, headers, timestamp)

    def target(self, topic: str) -> str:
        engine = self._engine
        assert isinstance(engine, ShadowReplay)  # noqa: S101 - only ShadowReplay makes these
        return engine.redirect(topic) or f"nowhere (discarded; meant for {topic})"

    def reroute(self, record: OutRecord) -> ProduceError | None:
        engine = self._engine
        assert isinstance(engine, ShadowReplay)  # noqa: S101 - only ShadowReplay makes these
        topic, key, value, headers = record
        engine.summary.dead_lettered += 1
        target = engine.redirect(topic)
        if target is None:
            return None
        return super().reroute((target, key, value, headers))


class ShadowReplay(KafkaEngine):
    """Replays ``ranges`` (``[first, end)`` per input partition) through the app's tasks."""

    chunk_type = _ShadowChunk

    def __init__(
        self,
        app: App,
        settings: Settings,
        ranges: Mapping[TP, tuple[int, int]],
        redirect: Callable[[str], str | None],
        *,
        batch_size: int = 500,
    ) -> None:
        super().__init__(
            Pipeline(app, settings, inline_retry_topics=True),
            logging.getLogger("streamkit.shadow"),
            batch_size=batch_size,
            max_in_flight=10_000,
            state_dir=Path(),
            memory_stores=True,
            concurrent=False,  # one record at a time: same results, and a replay ends
        )
        self.ranges = dict(ranges)
        self.redirect = redirect
        self.summary = ShadowSummary()
        roles = self.topology.roles()
        self.changelogs = {name for name, r in roles.items() if Role.CHANGELOG in r}
        config = settings.client_config()
        self.consumer = Consumer(
            {**config, "group.id": f"{app.group_id}-shadow-{uuid.uuid4().hex[:8]}",
             "enable.auto.commit": False, "enable.auto.offset.store": False,
             "isolation.level": "read_committed"}
        )  # fmt: skip
        self.producer = Producer(
            {**config, "enable.idempotence": True, "acks": "all", "linger.ms": 20}
        )  # fmt: skip
        self.feed = TableFeed(settings, self.pipeline, self.log, exactly_once=True)

    def run(self, progress: Callable[[int, int], None] | None = None) -> ShadowSummary:
        """Replay every range to its end, wait for every write; the summary."""
        began = time.monotonic()
        total = sum(end - first for first, end in self.ranges.values())
        remaining = {tp: end for tp, (first, end) in self.ranges.items() if end > first}
        for tp in remaining:
            self.open_task(tp)
        if self.app.tables:  # the tables as they are now, whole (the replay holds any key)
            topics = self.consumer.list_topics(timeout=15).topics
            self.feed.start({t: len(m.partitions) for t, m in topics.items()}, everything=True)
        self.consumer.assign([TopicPartition(*tp, self.ranges[tp][0]) for tp in remaining])
        try:
            while remaining:
                self.wake()
                batch = [
                    m for m in self.next_batch()
                    if m.error() is not None
                    or (m.offset() or 0) < remaining.get((m.topic() or "", m.partition() or 0), 0)
                ]  # fmt: skip
                self.handle(batch)
                self.deliveries()
                self._check_writes()
                for tp in [tp for tp, end in remaining.items() if self._finished(tp, end)]:
                    del remaining[tp]
                    self.consumer.incremental_unassign([TopicPartition(*tp)])
                if progress is not None:
                    progress(self._read(), total)
            if self.producer.flush(60):
                raise KafkaOperationError("shadow outputs not all written: timeout")
            self.advance()
            self._check_writes()
        finally:
            self.consumer.close()
            self.feed.close()
            self.close_tasks(list(self.tasks))
        self.summary.read = total
        self.summary.filtered = self.filtered
        self.summary.seconds = time.monotonic() - began
        return self.summary

    def _finished(self, tp: TP, end: int) -> bool:
        """Read to its end (a position: transaction markers take offsets too), nothing
        held, every write acknowledged."""
        task = self.tasks[tp]
        if task.hold is not None or len(task.offsets):
            return False
        (position,) = self.consumer.position([TopicPartition(*tp)])
        return bool(position.offset >= end)

    def _read(self) -> int:
        done = 0
        for tp, (first, _) in self.ranges.items():
            task = self.tasks.get(tp)
            if task is not None and task.offsets.ready is not None:
                done += task.offsets.ready - first
        return done

    def _check_writes(self) -> None:
        """A replay does not wait out an unwritable target: it fails, naming why."""
        if self.counters.rewinds:
            reasons = [t.last_rewind for t in self.tasks.values() if t.last_rewind]
            raise KafkaOperationError(f"shadow outputs not all written: {reasons[:1]}")
