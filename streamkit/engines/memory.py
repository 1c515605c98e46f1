"""The in-memory engine: an App's tasks run in-process, without Kafka.

It is a test tool (like Kafka Streams' TopologyTestDriver), not a substitute for Kafka.
Topics are in-memory logs with partitions; each input partition has a task, the same
:class:`~streamkit.runtime.task.PartitionTask` the Kafka worker runs, so contracts,
retries, dead letters and state behave as on a broker. Records derived from an appended
one are processed in turn, in the order they were appended. Time is virtual: a hold (a
blocking retry, a retry record not yet due) moves the engine's clock forward instead of
sleeping, and :meth:`MemoryEngine.advance` moves it on request, the event time too (as if
records that much later had come), closing windows and firing timers.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from streamkit.app import App
from streamkit.errors import SerializationError
from streamkit.failures.failure import FailureHandler
from streamkit.records import TP, Headers, Message, Record, key_partition
from streamkit.runtime.concurrency import ConcurrentRecords
from streamkit.runtime.offsets import Chunk
from streamkit.runtime.outcome import Outcome, OutRecord, Unqueued
from streamkit.runtime.pipeline import Pipeline
from streamkit.runtime.port import Counters, Hold
from streamkit.runtime.task import PartitionTask
from streamkit.settings import Settings
from streamkit.state.partition import PartitionState

__all__ = ["MemoryEngine"]

_MAX_HOPS = 10_000


@dataclass
class _Log:
    records: list[Record] = field(default_factory=list)
    partitions: dict[int, list[Record]] = field(default_factory=dict)


class MemoryEngine:
    """Topics as in-memory logs, and the app's tasks run on every record of an input."""

    def __init__(
        self,
        app: App,
        settings: Settings | None = None,
        failure_handler: FailureHandler | None = None,
        *,
        start_ms: int | None = None,
    ) -> None:
        self._clock = int(time.time() * 1000) if start_ms is None else start_ms
        self.event_time = -1
        """The highest event time so far: of the records appended, or moved by advance."""
        self.pipeline = Pipeline(app, settings, failure_handler, clock=self.now_ms)
        self.app = app
        self.topology = self.pipeline.topology
        self._topics = self.topology.topics()
        self._logs: dict[str, _Log] = {name: _Log() for name in self._topics}
        self._consumed = set(self.topology.consumed())
        self.tasks: dict[TP, PartitionTask] = {}
        self.held: dict[TP, PartitionTask] = {}
        self._positions: dict[TP, int] = {}
        self._queue: deque[tuple[TP, int]] = deque()
        self.counters = Counters()
        self.log = logging.getLogger("streamkit.memory")
        self.filtered: list[Record] = []
        """Input records that a processor filtered out (returned nothing for)."""
        self.waits: list[tuple[str, int, float]] = []
        """(processor, failed attempt, seconds it would have waited) per retry."""
        self.concurrent: ConcurrentRecords | None = None
        """Concurrent processors' records: run here one at a time, in order, through the
        lanes, retries and settling a worker's run them through."""
        if any(s.concurrent for s in app.processors):
            self.concurrent = ConcurrentRecords(
                self.pipeline,
                inline=True,
                clock=lambda: self._clock / 1000,
                settled=self._concurrent_settled,
                retried=lambda name, attempt, delay: self.waits.append((name, attempt, delay)),
            )
        for data in self.pipeline.tables.values():  # every partition of every table is here
            for p in range(self._topics[data.spec.topic].partitions):
                data.hold(p)

    # -- the tasks' Port ------------------------------------------------------------------
    def now_ms(self) -> int:
        """The virtual clock."""
        return self._clock

    def pause(self, task: PartitionTask, hold: Hold) -> None:
        """Hold the task's partition: its position goes back to the held record."""
        self._positions[task.tp] = hold.offset
        self.held[task.tp] = task
        self.waits.extend(hold.waits)

    def resume(self, task: PartitionTask) -> None:
        """Deliver the task's partition again, from its position."""
        self.held.pop(task.tp, None)
        topic, partition = task.tp
        end = len(self._logs[topic].partitions.get(partition, []))
        self._queue.extend((task.tp, o) for o in range(self._positions.get(task.tp, 0), end))

    def caught_up(self, task: PartitionTask) -> bool:
        """Whether every record of the task's partition was delivered."""
        log = self._logs[task.topic].partitions.get(task.partition, [])
        return self._positions.get(task.tp, 0) >= len(log)

    def read_ends(self, tps: list[TP]) -> dict[TP, int]:
        """The end of each of ``tps``: the records appended so far."""
        return {tp: len(self._logs[tp[0]].partitions.get(tp[1], [])) for tp in tps}

    def read_to(self, ends: dict[TP, int]) -> bool:
        """Whether every record before ``ends`` was delivered."""
        return all(self._positions.get(tp, 0) >= end for tp, end in ends.items())

    def feeder_partitions(self, topics: frozenset[str]) -> list[TP]:
        """The partitions of ``topics`` with records (every partition is here)."""
        return [(t, p) for t in topics for p in self._logs[t].partitions]

    def state_of(self, tp: TP) -> PartitionState | None:
        """The state of partition ``tp`` (every partition is here)."""
        return self._task(tp).state

    # -- records --------------------------------------------------------------------------
    def append(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None = None,
        timestamp: int | None = None,
    ) -> Record:
        """Append a raw record to ``topic`` and run everything downstream of it.

        Failure decisions are carried out as on Kafka: blocking retries hold the partition
        (the clock moves on by the delay; ``waits`` records it), retry-topic records are
        processed when due, dead letters go to the dead-letter (or parked) topic.
        """
        first = self.store(topic, key, value, headers, timestamp)
        try:
            self._drain()
        except BaseException:
            self._queue.clear()
            raise
        return first

    def redeliver(self, tp: TP, offset: int) -> None:
        """Deliver partition ``tp`` again from ``offset``, as a restarted worker would
        from its last committed offset."""
        task = self._task(tp)
        task.retrying = None
        self._positions[tp] = offset
        end = len(self._log(tp[0]).partitions.get(tp[1], []))
        self._queue.extend((tp, o) for o in range(offset, end))
        self._drain()

    def advance(self, seconds: float, *, wall: bool = True, event: bool = True) -> None:
        """Move the wall clock and (the highest) event time forward by ``seconds``, and run
        what became due: windows close, timers fire, held partitions resume."""
        step = int(seconds * 1000)
        if wall:
            self._clock += step
        if event and self.event_time >= 0:
            self.event_time += step
            for task in list(self.tasks.values()):
                if task.timed and task.state is not None:
                    self.pipeline.time.advance(task.topic, task.state, self.event_time)
                    self._fire(task)
        self._drain()

    def _tick(self) -> bool:
        """Fire what the clock made due (idle windows, wall-clock timers); whether any."""
        fired = False
        for task in list(self.tasks.values()):
            if task.wall_due(self._clock):
                self._fire(task)
                fired = True
        return fired

    def _fire(self, task: PartitionTask) -> None:
        chunk = task.offsets.open(_MemoryChunk(self, -1))
        try:
            task.fire(chunk)
        finally:
            chunk.sealed = True
        task.offsets.advance(task.delivery_failed)

    def records(self, topic: str) -> list[Record]:
        """Every record of ``topic`` in the order they were appended."""
        return list(self._log(topic).records)

    def _drain(self) -> None:
        hops = 0
        while True:
            if not self._queue:
                if self._tick():
                    continue
                if self._concurrent_retry():
                    continue
                if not self.held:
                    return
                self._clock = max(
                    self._clock,
                    min(t.hold.until_ms for t in self.held.values() if t.hold is not None),
                )
                for task in list(self.held.values()):
                    if task.due(self._clock):
                        task.release()
                continue
            tp, offset = self._queue.popleft()
            task = self._task(tp)
            if task.hold is not None or offset != self._positions.get(tp, 0):
                continue  # held, or delivered again from its position on resume
            hops += 1
            if hops > _MAX_HOPS:
                raise RuntimeError(f"more than {_MAX_HOPS} records from one input: a cycle?")
            self._run(task, self._logs[tp[0]].partitions[tp[1]][offset])

    def _run(self, task: PartitionTask, record: Record) -> None:
        offset = record.offset()
        self._positions[task.tp] = offset + 1
        chunk = task.offsets.open(_MemoryChunk(self, offset))
        concurrent = self.concurrent
        if concurrent is not None and task.topic in concurrent.schedulers:
            concurrent.submit(task, record, chunk)
            self._complete()
            return
        again = task.retrying is not None and task.retrying.offset == offset
        fast_filtered = self.pipeline.fast_filtered
        try:
            outcome = task.handle(record, chunk)
        finally:
            chunk.sealed = True
        task.offsets.advance(task.delivery_failed)
        filtered = self.pipeline.fast_filtered > fast_filtered or (
            outcome is not None and outcome.filtered > 0
        )
        if filtered and not again and task.topic in self.pipeline.by_input:
            self.filtered.append(record)

    def _complete(self) -> None:
        """Run the concurrent calls that may start, settle them, advance their offsets."""
        assert self.concurrent is not None  # noqa: S101 - only with concurrent processors
        self.concurrent.complete()
        for task in list(self.tasks.values()):
            if task.topic in self.concurrent.schedulers:
                task.offsets.advance(task.delivery_failed)

    def _concurrent_retry(self) -> bool:
        """Move the clock to the next retry of a concurrent call, and run it (whether one
        waited)."""
        due = None if self.concurrent is None else self.concurrent.next_retry()
        if due is None:
            return False
        # A millisecond past: the clock in seconds must reach ``due`` whatever the float's
        # rounding (at ceil alone it fell short now and then, and the loop never ended).
        self._clock = max(self._clock, math.ceil(due * 1000) + 1)
        self._complete()
        return True

    def _concurrent_settled(self, record: Message, outcome: Outcome) -> None:
        if outcome.filtered > 0 and isinstance(record, Record):
            self.filtered.append(record)

    def _task(self, tp: TP) -> PartitionTask:
        task = self.tasks.get(tp)
        if task is None:
            state = self.pipeline.open_state(*tp, Path(), memory=True)  # no files
            task = PartitionTask(tp, self.pipeline, self, state)
            self.tasks[tp] = task
        return task

    def _log(self, topic: str) -> _Log:
        log = self._logs.get(topic)
        if log is None:
            raise KeyError(f"topic {topic} is not declared by app {self.app.name}")
        return log

    def store(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None,
        timestamp: int | None,
        partition: int = -1,
    ) -> Record:
        """Append a record to ``topic`` (to be processed if the app reads it)."""
        log = self._log(topic)
        if partition < 0:
            partitions = self._topics[topic].partitions
            partition = key_partition(key, partitions) if key is not None else 0
        entries = log.partitions.setdefault(partition, [])
        record = Record(
            topic,
            partition,
            len(entries),
            self._clock if timestamp is None else timestamp,
            key,
            value,
            tuple(headers or ()),
        )
        entries.append(record)
        log.records.append(record)
        if topic in self.pipeline.tables_of:
            self._table_record(record)
        if topic in self._consumed:
            self.event_time = max(self.event_time, record.timestamp()[1])
            self._queue.append(((topic, partition), record.offset()))
        return record

    def _table_record(self, record: Record) -> None:
        """A record of a table topic: its row, in the tables of that topic."""
        topic = record.topic() or ""
        try:
            self.pipeline.table_record(
                topic, record.partition() or 0, record.offset() or 0, record.key(), record.value()
            )
        except SerializationError as exc:
            self.log.warning("table record skipped (it stays in %s): %s", topic, exc)


class _MemoryChunk(Chunk):
    """Outputs appended to the engine's logs at once (nothing to acknowledge)."""

    __slots__ = ("_engine",)

    def __init__(self, engine: MemoryEngine, first: int) -> None:
        super().__init__(first)
        self._engine = engine

    def __call__(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None,
        timestamp: int,
        partition: int = -1,
    ) -> Unqueued | None:
        self._engine.store(topic, key, value, headers, timestamp, partition)
        return None

    def reroute(self, record: OutRecord) -> Unqueued | None:
        topic, key, value, headers = record
        self._engine.store(topic, key, value, headers, None)
        return None
