"""What the Kafka worker and shadow replay share: an app's tasks fed in batches from a
consumer, their records produced through a producer.

The loop works per batch: ``consume(num_messages=N)``, then each record goes to its
partition's :class:`~streamkit.runtime.task.PartitionTask` with the chunk that collects
that partition's outputs of the batch; delivery reports are served once per loop. Holding
a partition (a blocking retry, a retry record not yet due, an unwritable DLQ) is pausing
it and seeking it back to the record, while the consumer keeps polling and other
partitions keep flowing; when the hold is over it resumes and the record comes again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from streamkit.engines.kafka.delivery import KafkaChunk
from streamkit.errors import KafkaOperationError
from streamkit.records import TP
from streamkit.records import Message as RecordLike
from streamkit.runtime.concurrency import ConcurrentRecords
from streamkit.runtime.pipeline import Pipeline
from streamkit.runtime.port import Counters, Hold
from streamkit.runtime.task import PartitionTask
from streamkit.state.partition import PartitionState

__all__ = ["KafkaEngine"]


class KafkaEngine:
    """Tasks of assigned partitions, run from a consumer's batches (the tasks' Port).

    Subclasses make ``consumer`` and ``producer`` and decide how partitions are
    assigned and what is committed.
    """

    consumer: Consumer
    producer: Producer
    chunk_type: type[KafkaChunk] = KafkaChunk
    """The sink of a partition's records in a batch (shadow replay redirects it)."""

    def __init__(
        self,
        pipeline: Pipeline,
        log: logging.Logger,
        *,
        batch_size: int,
        max_in_flight: int,
        state_dir: Path,
        memory_stores: bool = False,
        concurrent: bool = True,
        max_pending: int | None = None,
        max_pending_bytes: int = 64 << 20,
    ) -> None:
        self.pipeline = pipeline
        self.app = pipeline.app
        self.topology = pipeline.topology
        self.chain = pipeline.chain
        self.log = log
        self.batch_size = batch_size
        self.max_in_flight = max_in_flight
        self.state_dir = state_dir
        self.memory_stores = memory_stores
        self.counters = Counters()
        self.tasks: dict[TP, PartitionTask] = {}
        self.held: dict[TP, PartitionTask] = {}
        self._ends: dict[TP, tuple[float, int, int]] = {}
        self.consumed = 0
        self.produced = 0
        self.produced_by_topic: dict[str, int] = {}
        self.count_topics = bool(self.chain.middlewares)
        self.per_record = self.count_topics
        """Whether every output gets a delivery report of its own (middleware counts them
        per topic)."""
        rocksdb = any(s.kind == "rocksdb" for s in self.topology.stores())
        self.checkpoints = rocksdb and not memory_stores
        """Whether acknowledged changelog offsets are kept (RocksDB stores hold theirs: a
        restart restores only the changelog's tail after it). Memory stores restore from
        the start."""
        self.timed = any(pipeline.time.has_time(t) for t in self.topology.inputs())
        """Whether any partition has windows or timers (a tick has something to do)."""
        self.concurrent: ConcurrentRecords | None = None
        """Concurrent processors' records (None: every record runs in the loop, as shadow
        replay runs them)."""
        if concurrent and any(s.concurrent for s in self.app.processors):
            self.concurrent = ConcurrentRecords(pipeline)
        self._concurrent_topics = frozenset(self.concurrent.topics if self.concurrent else ())
        width = sum(s.concurrency for s in self.app.processors if s.concurrent)
        self.max_pending = max_pending or max(1000, 20 * width)
        """Records of concurrent processors taken and not settled above which their
        inputs pause (by default twenty per slot, at least 1000: a queue that never runs dry
        between a pause and the records fetched after the resume)."""
        self.max_pending_bytes = max_pending_bytes
        self.throttled: set[TP] = set()
        """Partitions paused because concurrent records wait beyond the bounds."""
        self.restoring = 0
        """Partitions whose stores are being restored now."""
        self.restored_records = 0
        """Changelog records applied by restores since the worker started."""
        self._partitions: dict[str, int] = {}
        """Partition counts of the topics routed into others, asked of the broker once."""
        self._commits_asked = 0.0
        """When the group's commits of partitions held elsewhere were last found short."""
        self.track_deliveries = True
        """Whether the tasks track their chunks' deliveries (at least once). Under exactly
        once the transaction decides: an aborted one's reports ("purged") mean nothing."""

    # -- the tasks' Port ------------------------------------------------------------------
    def now_ms(self) -> int:
        """Wall-clock milliseconds."""
        return int(time.time() * 1000)

    def pause(self, task: PartitionTask, hold: Hold) -> None:
        """Pause the task's partition and set its position back to the held record."""
        partition = TopicPartition(task.topic, task.partition, hold.offset)
        try:
            self.consumer.pause([partition])
            self.consumer.seek(partition)
        except KafkaException as exc:
            raise KafkaOperationError(
                f"cannot hold {task.topic}[{task.partition}] at offset {hold.offset}: "
                f"{exc.args[0].str()}"
            ) from exc
        self.held[task.tp] = task
        if self.concurrent is not None and task.topic in self._concurrent_topics:
            self.concurrent.abandon(task, hold.offset)  # they come again from the held one
            self.concurrent.positions[task.tp] = hold.offset

    def resume(self, task: PartitionTask, offset: int | None = None) -> None:
        """Resume the task's partition (a pause never outlives its hold), unless it waits
        for concurrent records to finish; with ``offset`` (a paused concurrent input: the
        record after the last one taken), sought there first, which also wakes
        librdkafka's fetcher at once (a partition only resumed is fetched again about a
        second later)."""
        self.held.pop(task.tp, None)
        if task.tp in self.throttled:
            return
        try:
            if offset is not None:
                self.consumer.seek(TopicPartition(task.topic, task.partition, offset))
            self.consumer.resume([TopicPartition(task.topic, task.partition)])
        except KafkaException as exc:  # revoked in the meantime: nothing to resume
            self.log.debug("resume of %s skipped: %s", task.tp, exc.args[0].str())

    def caught_up(self, task: PartitionTask) -> bool:
        """Whether the consumer's position in the task's partition is at its end.

        Once records of the partition flow, the end is the one the last fetch reported (no
        round trip). Before the first record since the assignment, the position is the
        committed offset (the group's, learnt at assignment) and the end is asked of the
        broker (at most once a second): a cached end may be from an earlier assignment.
        """
        partition = TopicPartition(task.topic, task.partition)
        try:
            (position,) = self.consumer.position([partition])
            if position.offset >= 0:
                _, high = self.consumer.get_watermark_offsets(partition, cached=True)
                return bool(high >= 0 and position.offset >= high)
            asked_at, low, high = self._ends.get(task.tp, (0.0, 0, -1))
            if time.monotonic() - asked_at > 1.0:
                low, high = self.consumer.get_watermark_offsets(partition, timeout=2)
                self._ends[task.tp] = (time.monotonic(), low, high)
        except KafkaException:
            return False
        at = task.committed if task.committed is not None else low
        return bool(high >= 0 and at >= high)

    def read_ends(self, tps: list[TP]) -> dict[TP, int]:
        """The end offset of each of ``tps``, asked of the broker now (a partition whose
        end cannot be had is left out: it does not hold a timer back for ever)."""
        ends: dict[TP, int] = {}
        for tp in tps:
            try:
                _, high = self.consumer.get_watermark_offsets(TopicPartition(*tp), timeout=2)
            except KafkaException as exc:
                self.log.debug("end of %s[%d] not known: %s", *tp, exc.args[0].str())
                continue
            ends[tp] = high
        return ends

    def read_to(self, ends: dict[TP, int]) -> bool:
        """Whether every record before ``ends`` was handled and what was produced from it
        acknowledged: in a partition assigned here, the consumer's position is at or past
        its end (every record the consumer returned was handled before the engine asks)
        and no delivery of a record before it waits; in one held by another worker, or by
        none now, the group's committed offset is (a worker commits a record only once its
        outputs are acknowledged)."""
        here = {tp: end for tp, end in ends.items() if tp in self.tasks}
        elsewhere = {tp: end for tp, end in ends.items() if tp not in self.tasks}
        return self._read_here(here) and self._committed_to(elsewhere)

    def _committed_to(self, ends: dict[TP, int]) -> bool:
        """Whether the group's committed offset of each of ``ends`` is at or past it (a
        partition never committed: when its end is the log's start). Asked of the group
        coordinator at most twice a second while short."""
        if not ends:
            return True
        if time.monotonic() - self._commits_asked < 0.5:
            return False
        short = False
        try:
            committed = self.consumer.committed([TopicPartition(*tp) for tp in ends], timeout=2)
            for found in committed:
                at = found.offset
                if at < 0:
                    at, _ = self.consumer.get_watermark_offsets(found, timeout=2)
                short = short or at < ends[(found.topic, found.partition)]
        except KafkaException as exc:
            self.log.debug("committed offsets not known: %s", exc.args[0].str())
            short = True
        if short:
            self._commits_asked = time.monotonic()
        return not short

    def _read_here(self, ends: dict[TP, int]) -> bool:
        held = [TopicPartition(*tp) for tp in ends]
        if not held:
            return True
        for tp, end in ends.items():
            task = self.tasks.get(tp)
            if task is not None and task.offsets.waiting_before(end):
                return False
        try:
            positions = self.consumer.position(held)
        except KafkaException:
            return False
        for found in positions:
            tp = (found.topic, found.partition)
            at = found.offset
            if at < 0:  # nothing returned since the assignment: from where it starts
                task = self.tasks.get(tp)
                at = -1 if task is None or task.committed is None else task.committed
            if at < 0:  # no commit either: it starts at the log's start
                try:
                    at, _ = self.consumer.get_watermark_offsets(found, timeout=2)
                except KafkaException:
                    return False
            if at < ends[tp]:
                return False
        return True

    def feeder_partitions(self, topics: frozenset[str]) -> list[TP]:
        """Every partition of ``topics``, wherever it is handled (their counts asked of
        the broker once; a topic whose count cannot be had: its partitions here)."""
        found: list[TP] = []
        for topic in sorted(topics):
            count = self._partitions.get(topic)
            if count is None:
                try:
                    info = self.consumer.list_topics(topic, timeout=5).topics.get(topic)
                except KafkaException:
                    info = None
                if info is None or info.error is not None or not info.partitions:
                    found += [tp for tp in self.tasks if tp[0] == topic]
                    continue
                count = self._partitions[topic] = len(info.partitions)
            found += [(topic, p) for p in range(count)]
        return found

    def state_of(self, tp: TP) -> PartitionState | None:
        """The state of partition ``tp`` when a task here holds it."""
        task = self.tasks.get(tp)
        return None if task is None else task.state

    # -- tasks ----------------------------------------------------------------------------
    def open_task(self, tp: TP) -> PartitionTask:
        """A task for a newly assigned partition, with its stores opened (not restored)."""
        directory = self.state_dir / self.app.name
        state = self.pipeline.open_state(*tp, directory, memory=self.memory_stores)
        task = PartitionTask(tp, self.pipeline, self, state)
        self.tasks[tp] = task
        return task

    def close_tasks(self, tps: list[TP]) -> None:
        """Close the tasks of partitions that were revoked or lost."""
        for tp in tps:
            self._ends.pop(tp, None)
            self.throttled.discard(tp)
            task = self.tasks.pop(tp, None)
            if task is not None:
                if self.concurrent is not None:
                    self.concurrent.abandon(task)
                    self.concurrent.positions.pop(tp, None)
                task.close()

    @property
    def blocked_partitions(self) -> int:
        """Partitions held right now (waiting for a retry, a due retry record, or a DLQ)."""
        return len(self.held)

    @property
    def unmatched(self) -> dict[str, int]:
        """Per processor: records its ``where=`` or ``where_headers=`` kept from it."""
        return dict(self.pipeline.filters.unmatched)

    @property
    def concurrency_stats(self) -> dict[str, tuple[int, int]]:
        """Per concurrent processor: calls running now, records taken and not yet settled."""
        if self.concurrent is None:
            return {}
        return {s.spec.name: (s.busy, s.pending) for s in self.concurrent.schedulers.values()}

    @property
    def filtered(self) -> int:
        """Processor results that filtered their record out, so far."""
        return self.pipeline.fast_filtered + self.counters.filtered

    # -- the batch ------------------------------------------------------------------------
    def wake(self) -> None:
        """Resume the partitions whose hold is over."""
        if not self.held:
            return
        now = self.now_ms()
        for task in list(self.held.values()):
            if task.due(now):
                task.release()

    def next_batch(self, wait: float = 0.2) -> list[Message]:
        """What is queued, up to the batch size; when nothing is, wait for a first record.

        ``consume(n, timeout)`` waits for ``n`` records or the timeout, so at a modest rate
        every record would wait for its batch to fill. Taking what the prefetch queue holds
        keeps full batches under load and adds no wait when the stream is slow.
        """
        messages = self.consumer.consume(num_messages=self.batch_size, timeout=0)
        if messages:
            return messages
        first = self.consumer.poll(wait)
        if first is None:
            return []
        rest = self.consumer.consume(num_messages=self.batch_size - 1, timeout=0)
        return [first, *rest]

    def handle(self, messages: Sequence[RecordLike]) -> list[KafkaChunk]:
        """Hand each record to its partition's task; return the batch's chunks, sealed."""
        chunks: dict[TP, KafkaChunk] = {}
        i, end = 0, len(messages)
        try:
            while i < end:  # a run of one partition's records at a time (see handle_run)
                msg = messages[i]
                error = msg.error()
                if error is not None:
                    self._message_error(error)
                    i += 1
                    continue
                tp = (msg.topic() or "", msg.partition() or 0)
                task = self.tasks.get(tp)
                if task is None or task.hold is not None:
                    i += 1  # revoked, or fetched before it was held: it comes again
                    continue
                if tp[0] in self._concurrent_topics:
                    self._submit(task, msg)
                    i += 1
                    continue
                chunk = chunks.get(tp)
                if chunk is None:
                    chunk = self.chunk_type(task, msg.offset() or 0, self)
                    chunks[tp] = chunk
                    if self.track_deliveries:
                        task.offsets.open(chunk)
                i = task.handle_run(messages, i, chunk)
        finally:
            for sealed in chunks.values():
                sealed.sealed = True
            self.consumed += len(messages)
            if self.chain.middlewares:
                per_topic: dict[str, int] = {}
                for msg in messages:
                    name = msg.topic() or ""
                    per_topic[name] = per_topic.get(name, 0) + 1
                for name, count in per_topic.items():
                    self.chain.consumed(name, count)
        return list(chunks.values())

    # -- concurrent processors ------------------------------------------------------------
    def _submit(self, task: PartitionTask, msg: RecordLike) -> None:
        """A record of a concurrent processor: a chunk of its own, settled when its call
        returns (see :mod:`streamkit.runtime.concurrency`)."""
        assert self.concurrent is not None  # noqa: S101 - only its topics come here
        chunk = task.offsets.open(self.chunk_type(task, msg.offset() or 0, self))
        self.concurrent.submit(task, msg, chunk)

    def settle_concurrent(self, wait: float = 0.0) -> None:
        """Settle the concurrent calls that returned; pause the concurrent inputs while more
        records than the bounds allow are taken and not yet committable, resume them below
        half of it.

        Counted from each partition's lowest incomplete record, not only what runs: after
        a crash everything past the last commit is run again, so this bounds the
        duplicates too (plus what one batch and one commit interval add).
        """
        concurrent = self.concurrent
        if concurrent is None:
            return
        concurrent.complete(wait)
        self.advance()
        waiting = sum(
            len(task.offsets) for tp, task in self.tasks.items() if tp[0] in self._concurrent_topics
        )
        over = waiting >= self.max_pending or concurrent.pending_bytes >= self.max_pending_bytes
        if over:
            self._throttle(concurrent)
        elif self.throttled and (
            waiting <= self.max_pending // 2
            and concurrent.pending_bytes <= self.max_pending_bytes // 2
        ):
            tps, self.throttled = self.throttled, set()
            for tp in tps:
                task = self.tasks.get(tp)
                if task is not None and task.hold is None:
                    self.resume(task, concurrent.positions.get(tp))

    def _throttle(self, concurrent: ConcurrentRecords) -> None:
        """Pause every concurrent input partition not held. librdkafka drops what it
        fetched past the last record taken and fetches it again on resume."""
        for tp, task in self.tasks.items():
            if tp[0] not in self._concurrent_topics or task.hold is not None:
                continue
            if tp in self.throttled:
                continue
            try:
                self.consumer.pause([TopicPartition(*tp)])
            except KafkaException as exc:
                self.log.debug("pause of %s skipped: %s", tp, exc.args[0].str())
                continue
            self.throttled.add(tp)

    def tick_due(self) -> bool:
        """Whether an idle window or a wall-clock timer of some partition is due."""
        if not self.timed:
            return False
        now = self.now_ms()
        return any(task.wall_due(now) for task in list(self.tasks.values()))

    def tick(self) -> list[KafkaChunk]:
        """Close idle windows and fire wall-clock timers that are due, each partition's
        into a chunk of no record; return those chunks, sealed."""
        if not self.timed:
            return []
        now, chunks = self.now_ms(), []
        for task in list(self.tasks.values()):
            if task.wall_due(now):
                chunk = self.chunk_type(task, -1, self)
                if self.track_deliveries:
                    task.offsets.open(chunk)
                chunks.append(chunk)
                try:
                    task.fire(chunk)
                finally:
                    chunk.sealed = True
        return chunks

    def deliveries(self) -> None:
        """Serve delivery reports, settle what they completed; wait for the broker while
        more records than allowed are unacknowledged."""
        self.producer.poll(0)
        if self.produced_by_topic:
            counts, self.produced_by_topic = self.produced_by_topic, {}
            self.chain.produced(counts)
        self.advance()
        while len(self.producer) > self.max_in_flight:
            self.producer.poll(0.05)
            self.advance()

    def advance(self) -> None:
        """Move every task past its completed chunks (handling their failed deliveries)."""
        for task in list(self.tasks.values()):
            task.offsets.advance(task.delivery_failed)

    def _message_error(self, error: KafkaError) -> None:
        if error.code() == KafkaError._PARTITION_EOF:
            return
        if error.fatal():
            raise KafkaOperationError(f"fatal consumer error: {error.str()}")
        self.log.warning("consumer error (retried by the client): %s", error.str())
