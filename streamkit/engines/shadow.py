"""Shadow replay: the app's tasks over a bounded range of its inputs, aside from the live
group.

The same batch loop and per-partition tasks as the Kafka worker (so a replay settles
records exactly as the live app does), with what must differ for a replay: the consumer
is assigned the range and joins no group, nothing is committed, every output, projection
and dead letter goes to its redirected topic (or nowhere), changelog writes are not
written (the replay's stores live in memory and start empty: replay from the beginning of
the input to rebuild state), tables are read whole as they are now, and a processor's
retry topics become blocking retries with the same delays (a replay reads no retry topic).

The whole topology runs: what a router writes to one of the app's repartition topics is
handed, in memory, to that topic's partition (the same partition the producer would pick)
and processed there, so gathers, joins, workflows and re-keyed aggregates and windows
replay too; the live repartition topics are neither read nor written. Time is the
replayed records' time: the replay's clock is the highest record timestamp handled so far
(moved on to a held partition's due time when nothing else can go on), so wall-clock
timers, gather timeouts and workflow waits fire as they did for the live app, up to the
time of the last record replayed.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition

from streamkit.app import App
from streamkit.engines.kafka.delivery import KafkaChunk
from streamkit.engines.kafka.engine import KafkaEngine
from streamkit.engines.kafka.tables import TableFeed
from streamkit.errors import KafkaOperationError
from streamkit.records import TP, Headers, Message, Record, key_partition
from streamkit.runtime.outcome import OutRecord, Unqueued
from streamkit.runtime.pipeline import Pipeline
from streamkit.runtime.port import Hold
from streamkit.runtime.task import PartitionTask
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
    ) -> Unqueued | None:
        engine = self._engine
        assert isinstance(engine, ShadowReplay)  # noqa: S101 - only ShadowReplay makes these
        if topic in engine.changelogs:
            return None  # the replay's stores are its own, in memory
        if topic in engine.internal:  # a hop of the topology: processed here, in memory
            engine.hop(topic, key, value, headers, timestamp)
            return None
        engine.summary.emitted[topic] = engine.summary.emitted.get(topic, 0) + 1
        target = engine.redirect(topic)
        if target is None:
            return None
        return super().__call__(target, key, value, headers, timestamp)

    def target(self, topic: str) -> str:
        engine = self._engine
        assert isinstance(engine, ShadowReplay)  # noqa: S101 - only ShadowReplay makes these
        return engine.redirect(topic) or f"nowhere (discarded; meant for {topic})"

    def reroute(self, record: OutRecord) -> Unqueued | None:
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
        self.virtual_ms = 0
        """The replay's clock: the highest timestamp of a record handled so far."""
        super().__init__(
            Pipeline(app, settings, inline_retry_topics=True, clock=lambda: self.virtual_ms),
            logging.getLogger("streamkit.shadow"),
            batch_size=batch_size,
            max_in_flight=10_000,
            state_dir=Path(),
            memory_stores=True,
            concurrent=False,  # one record at a time: same results, and a replay ends
        )
        self.ranges = dict(ranges)
        self.remaining: dict[TP, int] = {}
        """Input partitions not read to their end yet, with that end."""
        self.redirect = redirect
        self.internal = {
            name: topic.partitions
            for name, topic in app.topics.items()
            if name in app.repartitioned
        }
        """The app's repartition topics and their partitions: hops handled in memory."""
        self.hops: dict[TP, list[Record]] = {}
        self.hop_at: dict[TP, int] = {}
        """Per partition of a repartition topic: its records, and the next to hand on."""
        self.summary = ShadowSummary()
        roles = self.topology.roles()
        self.changelogs = {name for name, r in roles.items() if Role.CHANGELOG in r}
        self.consumer = Consumer(
            settings.client_config(
                for_client="consumer",
                **{
                    "group.id": f"{app.group_id}-shadow-{uuid.uuid4().hex[:8]}",
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    "isolation.level": "read_committed",
                },
            )
        )
        self.producer = Producer(
            settings.client_config(
                for_client="producer",
                **{"enable.idempotence": True, "acks": "all", "linger.ms": 20},
            )
        )
        self.feed = TableFeed(settings, self.pipeline, self.log, exactly_once=True)

    def run(self, progress: Callable[[int, int], None] | None = None) -> ShadowSummary:
        """Replay every range to its end, and what it routes through the topology; wait
        for every write; the summary."""
        began = time.monotonic()
        total = sum(end - first for first, end in self.ranges.values())
        self.remaining = {tp: end for tp, (first, end) in self.ranges.items() if end > first}
        for tp in self.remaining:
            self.open_task(tp)
        if self.app.tables:  # the tables as they are now, whole (the replay holds any key)
            topics = self.consumer.list_topics(timeout=15).topics
            self.feed.start({t: len(m.partitions) for t, m in topics.items()}, everything=True)
        self.consumer.assign([TopicPartition(*tp, self.ranges[tp][0]) for tp in self.remaining])
        try:
            while True:
                self.wake()
                fetched = self.next_batch() if self.remaining else []
                batch = [m for m in fetched if m.error() is not None or self._in_range(m)]
                self.handle(batch)
                moved = bool(batch) | self._hand_on()
                moved = bool(self.tick()) or moved
                self.deliveries()
                self._check_writes()
                for tp in [tp for tp, end in self.remaining.items() if self._finished(tp, end)]:
                    del self.remaining[tp]
                    self.consumer.incremental_unassign([TopicPartition(*tp)])
                if progress is not None:
                    progress(self._read(), total)
                if not moved and self._quiet():
                    break
                if not moved and not self.remaining and self.held:  # time moves on to them
                    due = min(t.hold.until_ms for t in self.held.values() if t.hold is not None)
                    self.virtual_ms = max(self.virtual_ms, due)
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

    # -- the topology's hops, in memory -------------------------------------------------
    def hop(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None,
        timestamp: int,
    ) -> None:
        """A record a router wrote to repartition topic ``topic``: kept for its partition."""
        tp = (topic, key_partition(key or b"", self.internal[topic]))
        log = self.hops.get(tp)
        if log is None:
            log = self.hops[tp] = []
            self.hop_at[tp] = 0
            self.open_task(tp)
        log.append(Record(topic, tp[1], len(log), timestamp, key, value, headers or ()))

    def _hand_on(self) -> bool:
        """Process what the routers wrote (and what that routes on), a batch at a time per
        partition, until nothing is left or every partition left is held; whether any."""
        moved = False
        while True:
            ready = [
                tp
                for tp, log in self.hops.items()
                if self.hop_at[tp] < len(log) and self.tasks[tp].hold is None
            ]
            if not ready:
                return moved
            for tp in ready:
                at = self.hop_at[tp]
                batch: list[Message] = list(self.hops[tp][at : at + self.batch_size])
                self.hop_at[tp] = at + len(batch)  # (a hold moves it back: see pause)
                self.handle(batch)
                self.deliveries()
                moved = True

    def _in_range(self, msg: Message) -> bool:
        """Whether a record fetched is before the end of its partition's range."""
        end = self.remaining.get((msg.topic() or "", msg.partition() or 0), 0)
        return (msg.offset() or 0) < end

    def _quiet(self) -> bool:
        """Every range read, every hop handed on, nothing held or waiting for a write."""
        return (
            not self.remaining
            and all(self.hop_at[tp] >= len(log) for tp, log in self.hops.items())
            and not self.held
            and not any(len(task.offsets) for task in self.tasks.values())
        )

    # -- the engine's port, for the replay --------------------------------------------------
    def now_ms(self) -> int:
        """The replay's clock: the replayed records' time."""
        return self.virtual_ms

    def handle(self, messages: Sequence[Message]) -> list[KafkaChunk]:
        """As a worker does; the replay's clock moves to the records' time first."""
        for msg in messages:
            if msg.error() is None:
                self.virtual_ms = max(self.virtual_ms, msg.timestamp()[1])
        return super().handle(messages)

    def pause(self, task: PartitionTask, hold: Hold) -> None:
        """Hold a partition; a hop's partition goes on from the held record when resumed."""
        if task.tp in self.hops:
            self.hop_at[task.tp] = min(self.hop_at[task.tp], hold.offset)
            self.held[task.tp] = task
            return
        super().pause(task, hold)

    def resume(self, task: PartitionTask, offset: int | None = None) -> None:
        """End a hold (a hop's partition is handed on again by :meth:`_hand_on`)."""
        if task.tp in self.hops:
            self.held.pop(task.tp, None)
            return
        super().resume(task, offset)

    def caught_up(self, task: PartitionTask) -> bool:
        """Whether the task's partition is read to the end of what is replayed."""
        if task.tp in self.hops:
            return self.hop_at[task.tp] >= len(self.hops[task.tp])
        return task.tp not in self.remaining

    def read_ends(self, tps: list[TP]) -> dict[TP, int]:
        """The end of what is replayed of each of ``tps``."""
        ends = {}
        for tp in tps:
            if tp in self.hops:
                ends[tp] = len(self.hops[tp])
            elif tp in self.ranges:
                ends[tp] = self.ranges[tp][1]
        return ends

    def read_to(self, ends: dict[TP, int]) -> bool:
        """Whether each of ``ends`` is handed on (and its writes acknowledged)."""
        for tp, end in ends.items():
            task = self.tasks.get(tp)
            if task is not None and task.offsets.waiting_before(end):
                return False
            if tp in self.hops and self.hop_at[tp] < end:
                return False
            if tp in self.remaining:
                (position,) = self.consumer.position([TopicPartition(*tp)])
                if position.offset < end:
                    return False
        return True

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
