"""The Kafka engine: one worker = one consumer-group member running the app's pipeline.

The loop works per batch: ``consume(num_messages=N)``, decode → process → encode →
``produce`` for each record, delivery reports served once per batch. At least once: an
input offset is committed only after every record derived from it (outputs, dead letters,
retry records), and everything before it in its partition, is acknowledged by the broker
(``acks=all``, idempotent producer). Revoked partitions are flushed and committed up to
what was acknowledged, then forgotten; lost partitions are forgotten without a commit.

Outputs are acknowledged per batch: one delivery callback counts a batch's outputs, with
no per-record bookkeeping. When an output fails, which input it came from is not known:
the batch's partitions are rewound to its first records, and processed again with a
delivery report per record, which names the record whose output fails.

Failures follow the app's failure policy: blocking retries and unavailable dead-letter
topics hold the record's partition (paused, rewound to the record) while the consumer
keeps polling; dead letters and retry-topic records are produced like outputs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from streamkit.app import App
from streamkit.engines._transactions import Transactions, transactional_id
from streamkit.errors import ConfigError, KafkaOperationError
from streamkit.failures.handler import OutputTooLargeError, is_too_large
from streamkit.observability.logs import record_fields
from streamkit.ops.console import message_headers
from streamkit.ops.offsets import read_until
from streamkit.runtime import failpoints
from streamkit.runtime.blocking import PartitionBlocker
from streamkit.runtime.failure import Failure, FailureHandler, Stage
from streamkit.runtime.middleware import Middleware
from streamkit.runtime.offsets import (
    Batch,
    DeliveryFailure,
    LostOutput,
    OffsetTracker,
    TopicPartitionKey,
)
from streamkit.runtime.pipeline import Outcome, OutRecord, Pipeline
from streamkit.settings import Settings

__all__ = ["FailureCounters", "KafkaWorker", "WorkerOptions"]


# The consumer's fetching. Users override any of these with STREAMKIT_KAFKA_*.
# - Prefetch bounded: librdkafka's defaults (64 MB of queued records, 50 MB fetches) let
#   a worker facing a backlog grow to about 190 MB, most of it fetch buffers that queued
#   records keep alive. With these it peaks near 130 MB, with no throughput cost beyond
#   run-to-run noise (1M-record backlog, benchmarks/harness.py). A short queue backoff
#   keeps the small queue fed: librdkafka otherwise waits 1 s before fetching for a
#   partition whose queue was full.
# - Fetches gathered for up to 5 ms: with the default (answer as soon as 1 byte is there)
#   a stream of 5,000 records/s came in fetches of 1-3 records, and the fetching cost
#   the broker and the worker so much CPU on 2 cores that p99 latency swung from 21 ms to
#   over 1 s between passes; with 4 KiB or 5 ms it stayed at 29-49 ms (p50 10 ms instead
#   of 7-12 ms). 64 KiB cost a backlog a fifth of its throughput; 4 KiB cost nothing
#   measurable. The price: an idle worker asks the broker every 5 ms, not every 500 ms.
_FETCH = {
    "queued.max.messages.kbytes": 8192,
    "fetch.max.bytes": 4 * 1024 * 1024,
    "fetch.queue.backoff.ms": 10,
    "fetch.min.bytes": 4096,
    "fetch.wait.max.ms": 5,
}


@dataclass(frozen=True)
class WorkerOptions:
    """Tuning of one worker.

    Attributes:
        worker_id: names the worker in logs and in its Kafka client id.
        batch_size: records taken per ``consume`` call.
        commit_interval: seconds between (asynchronous) offset commits.
        shutdown_timeout: seconds a graceful stop may take (flush, commit, leave).
        max_in_flight: records produced and not yet acknowledged (outputs, dead letters,
            changelog writes) above which the loop waits for the broker before it
            consumes more. Counted in records, not batches: under a slow stream batches
            are small, and a count of batches stalled the loop on a few records.
        consumer: extra librdkafka consumer properties.
        producer: extra librdkafka producer properties.
    """

    worker_id: str = "0"
    batch_size: int = 500
    commit_interval: float = 1.0
    shutdown_timeout: float = 30.0
    max_in_flight: int = 4000
    consumer: Mapping[str, Any] | None = None
    producer: Mapping[str, Any] | None = None


@dataclass
class FailureCounters:
    """Counts of the failure machinery (exported as metrics by observability)."""

    retries: int = 0
    dead_letters: int = 0
    retry_forwards: int = 0
    rewinds: int = 0


@dataclass(frozen=True)
class _RetryState:
    offset: int
    attempt: int
    only: frozenset[str]


class KafkaWorker:
    """Runs an :class:`App` as a member of its consumer group until asked to stop."""

    def __init__(
        self,
        app: App,
        *,
        settings: Settings | None = None,
        options: WorkerOptions | None = None,
        failure_handler: FailureHandler | None = None,
        middleware: Sequence[Middleware] = (),
    ) -> None:
        try:
            failpoints.check()
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self.app = app
        self.settings = settings or Settings.from_env()
        self.options = options or WorkerOptions()
        self.pipeline = Pipeline(
            app,
            self.settings,
            failure_handler,
            middleware,
            state_dir=self.settings.state_dir / "stores" / app.group_id,
        )
        self.state = self.pipeline.state
        self._restore_consumer: Consumer | None = None
        self.chain = self.pipeline.chain
        self.last_poll = time.monotonic()
        self.ever_assigned = False
        self.lag: dict[TopicPartitionKey, int] = {}
        self._lag_at = 0.0
        self._produced_by_topic: dict[str, int] = {}
        self.log = logging.getLogger(f"streamkit.worker.{self.options.worker_id}")
        self.tracker = OffsetTracker()
        self.counters = FailureCounters()
        self.consumed = 0
        self.produced = 0
        self.filtered = 0
        self.assigned: set[TopicPartitionKey] = set()
        self._committed: dict[TopicPartitionKey, int] = {}
        self._retrying: dict[TopicPartitionKey, _RetryState] = {}
        self._stopping = False
        self._failed = False
        self._callback_error: BaseException | None = None
        self._batch: Batch | None = None
        self._ack: Callable[[KafkaError | None, Message], None] | None = None
        self._message: Message | None = None
        # Partitions whose records up to an offset get a delivery report each, after an
        # output of theirs failed under per-batch acknowledgement.
        self._exact: dict[TopicPartitionKey, int] = {}
        self._sink_errors: list[tuple[str, KafkaError]] = []
        client_id = f"{app.name}-w{self.options.worker_id}-{os.getpid()}"
        kafka_log = logging.getLogger("streamkit.kafka")
        self.consumer = Consumer(
            self.settings.client_config(
                _FETCH,
                **{
                    "group.id": app.group_id,
                    "client.id": client_id,
                    "partition.assignment.strategy": "cooperative-sticky",
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    "auto.offset.reset": "earliest",
                    "isolation.level": (
                        "read_committed" if app.guarantee == "exactly_once" else "read_uncommitted"
                    ),
                    "logger": kafka_log,
                    "on_commit": self._on_commit,
                    **dict(self.options.consumer or {}),
                },
            )
        )
        self.eos = app.guarantee == "exactly_once"
        producer_config = self.settings.client_config(
            **{
                "client.id": client_id,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "compression.type": "lz4",
                "logger": kafka_log,
                **dict(self.options.producer or {}),
            }
        )
        self.transactions: Transactions | None = None
        if self.eos:
            producer_config["transactional.id"] = transactional_id(
                app.group_id, self.options.worker_id
            )
            self.producer = Producer(producer_config)  # replaced in run() once fenced in
        else:
            self.producer = Producer(producer_config)
        self._producer_config = producer_config
        self.blocker = PartitionBlocker(self.consumer, self.log)
        self._fast_paths = {
            topic: path
            for topic in app.input_topics()
            if (path := self.pipeline.fast_path(topic)) is not None
        }
        self._count_topics = bool(self.chain.middlewares)
        # Per-record delivery reports where each delivered output matters on its own:
        # state stores track their changelog offsets, middleware counts per topic.
        self._per_record = self.state is not None or self._count_topics

    @property
    def blocked_partitions(self) -> int:
        """Partitions held right now (waiting for a retry, a due retry record, or a DLQ)."""
        return len(self.blocker)

    # -- control ------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Ask the loop to stop after the current batch (safe from a signal handler)."""
        self._stopping = True

    def check_topics(self, timeout: float = 15.0) -> None:
        """Fail fast when the broker does not answer or a topic of the app is missing."""
        try:
            metadata = self.consumer.list_topics(timeout=timeout)
        except KafkaException as exc:
            raise KafkaOperationError(
                f"cannot reach Kafka at {self.settings.bootstrap_servers}: {exc.args[0].str()}"
            ) from exc
        names = {spec.input for spec in self.app.processors}
        for spec in self.app.processors:
            names.update(spec.outputs)
        names.update(self.app.all_topics())
        missing = sorted(n for n in names if n not in metadata.topics)
        if missing:
            raise ConfigError(
                f"topics of app {self.app.name} do not exist: {', '.join(missing)} "
                "(create them with `streamkit topics create MODULE`)"
            )

    def run(self) -> None:
        """Consume and process until :meth:`request_stop`; then flush, commit and leave.

        Raises :class:`~streamkit.errors.ProcessingFailedError` when the failure policy
        says stop, after committing only what precedes the failed record.
        """
        self.check_topics()
        if self.eos:
            self.transactions = Transactions(
                self.consumer, lambda: Producer(self._producer_config), self.log
            )
            self.producer = self.transactions.producer
        self.consumer.subscribe(
            self.app.input_topics(),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        self.log.info(
            "consuming %s as group %s", ", ".join(self.app.input_topics()), self.app.group_id
        )
        last_commit = time.monotonic()
        try:
            while not self._stopping:
                self.blocker.wake()
                messages = self._next_batch()
                self.last_poll = time.monotonic()
                self._raise_callback_error()
                if messages and self.transactions is not None:
                    self._handle_transaction(messages, self.transactions)
                elif messages:
                    self._handle(messages)
                self.producer.poll(0)
                if self._produced_by_topic:
                    counts, self._produced_by_topic = self._produced_by_topic, {}
                    self.chain.produced(counts)
                self.tracker.advance(self._delivery_failed)
                while len(self.producer) > self.options.max_in_flight:
                    self.producer.poll(0.05)
                    self.tracker.advance(self._delivery_failed)
                if time.monotonic() - last_commit >= self.options.commit_interval:
                    self._commit(asynchronous=True)
                    last_commit = time.monotonic()
                    self._refresh_lag()
        except BaseException:
            self._failed = True
            raise
        finally:
            self._shutdown()

    # -- the batch ----------------------------------------------------------------------
    def _next_batch(self) -> list[Message]:
        """What is queued, up to ``batch_size``; when nothing is, wait for the first record.

        ``consume(n, timeout)`` waits for ``n`` records or the timeout, so at a modest rate
        every record would wait for its batch to fill. Taking what the prefetch queue holds
        keeps full batches under load and adds no wait when the stream is slow.
        """
        messages = self.consumer.consume(num_messages=self.options.batch_size, timeout=0)
        if messages:
            return messages
        first = self.consumer.poll(0.2)
        if first is None:
            return []
        rest = self.consumer.consume(num_messages=self.options.batch_size - 1, timeout=0)
        return [first, *rest]

    def _handle_transaction(self, messages: list[Message], txn: Transactions) -> None:
        """Exactly once: the batch's records, changelog writes and offsets in one transaction."""
        batch = Batch()
        if self.state is not None:
            self.state.begin()
        txn.begin()
        try:
            self._handle(messages, batch)
            if failpoints.ARMED:
                failpoints.reached("transaction")
        except BaseException:
            txn.abort()
            if self.state is not None:
                self.state.rollback()
            raise
        offsets = {tp: o for tp, o in batch.next_offsets.items() if tp in self.assigned}
        if txn.commit(offsets):
            self._mark_committed(offsets)
            if self.state is not None:
                self.state.commit()
            return
        self.producer = txn.producer
        if self.state is not None:
            self.state.rollback()
        for tp in offsets:
            self._rewind_to_committed(tp)

    def _rewind_to_committed(self, tp: TopicPartitionKey) -> None:
        """After an aborted transaction: back to the last committed offset, after a pause."""
        committed = self._committed.get(tp)
        if committed is None:
            (found,) = self.consumer.committed([TopicPartition(*tp)], timeout=30)
            committed = found.offset if found.offset >= 0 else None
        if committed is None:
            low, _ = self.consumer.get_watermark_offsets(TopicPartition(*tp), timeout=30)
            committed = low
        self._retrying.pop(tp, None)
        self.blocker.block(tp, committed, self.blocker.backoff(tp))

    def _handle(self, messages: list[Message], batch: Batch | None = None) -> None:
        batch = batch or self.tracker.begin()
        self._batch = batch
        self._ack = self._acker(batch, messages)
        retry_topics = self.pipeline.retry_topics
        fast_paths = self._fast_paths
        next_offsets = batch.next_offsets
        blocked = self.blocker.until
        retrying = self._retrying
        sink = self._sink
        try:
            for msg in messages:
                error = msg.error()
                if error is not None:
                    self._message_error(error)
                    continue
                topic = msg.topic() or ""
                tp = (topic, msg.partition() or 0)
                if blocked and tp in blocked:
                    continue  # fetched before the partition was held; it comes again
                self._message = msg
                fast = fast_paths.get(topic)
                value = msg.value()
                if fast is not None and value is not None and (not retrying or tp not in retrying):
                    offset = msg.offset() or 0
                    outcome = fast(tp[1], offset, msg.timestamp()[1], msg.key(), value, sink)
                    if outcome is None and not self._sink_errors:
                        next_offsets[tp] = offset + 1
                        continue
                    self._settle(
                        batch, msg, tp, offset, outcome or Outcome(), message_headers(msg),
                        msg.timestamp()[1], 1,
                    )  # fmt: skip
                elif topic in retry_topics:
                    self._handle_retry_record(batch, msg, tp)
                else:
                    self._handle_record(batch, msg, tp)
        finally:
            self.consumed += len(messages)
            if self.chain.middlewares:
                per_topic: dict[str, int] = {}
                for msg in messages:
                    name = msg.topic() or ""
                    per_topic[name] = per_topic.get(name, 0) + 1
                for name, count in per_topic.items():
                    self.chain.consumed(name, count)
            batch.sealed = True
            self._batch = None
            self._ack = None
            self._message = None

    def _handle_record(self, batch: Batch, msg: Message, tp: TopicPartitionKey) -> None:
        offset = msg.offset() or 0
        state = self._retrying.get(tp)
        attempt, only = 1, None
        if state is not None and state.offset == offset:
            attempt, only = state.attempt, state.only
        headers = message_headers(msg)
        timestamp = msg.timestamp()[1]
        outcome = self.pipeline.process(
            tp[0], tp[1], offset, timestamp, msg.key(), msg.value(), headers, self._sink,
            attempt=attempt, only=only,
        )  # fmt: skip
        self.filtered += outcome.filtered
        self._settle(batch, msg, tp, offset, outcome, headers, timestamp, attempt)

    def _handle_retry_record(self, batch: Batch, msg: Message, tp: TopicPartitionKey) -> None:
        offset = msg.offset() or 0
        origin = self.pipeline.retry_origin(message_headers(msg))
        if origin is None:
            self.log.error("%s[%d]@%d is not a streamkit retry record; skipped", *tp, offset)
            batch.next_offsets[tp] = offset + 1
            return
        wait = origin.due_ms / 1000 - time.time()
        if wait > 0:
            self.blocker.block(tp, offset, wait)
            return
        outcome = self.pipeline.process(
            origin.topic, origin.partition, origin.offset, origin.timestamp, msg.key(),
            msg.value(), origin.headers, self._sink, attempt=origin.attempt,
            only=frozenset({origin.processor}),
        )  # fmt: skip
        self._settle(batch, msg, tp, offset, outcome, origin.headers, origin.timestamp, 0)

    def _settle(
        self,
        batch: Batch,
        msg: Message,
        tp: TopicPartitionKey,
        offset: int,
        outcome: Outcome,
        headers: list[tuple[str, bytes | None]],
        timestamp: int,
        attempt: int,
    ) -> None:
        """Carry out the failure decisions of one record; advance its partition or hold it."""
        errors, self._sink_errors = self._sink_errors, []
        for topic, error in errors:
            if self._sink_failed(outcome, tp, offset, attempt, topic, error):
                return  # the partition is held at this record
        trace = outcome.extra_headers
        for failure in outcome.dead:
            record = self.pipeline.dead_letter_record(
                failure, msg.key(), msg.value(), headers, timestamp, trace
            )
            if not self._produce_internal(batch, msg, failure, record):
                return
            self.counters.dead_letters += 1
            self.log.warning(
                "dead-lettered to %s: %s", record[0], failure.describe(),
                extra=record_fields(failure.topic, failure.partition, failure.offset,
                                    failure.processor),
            )  # fmt: skip
        for failure, retry_topic, delay in outcome.forward:
            record = self.pipeline.retry_record(
                failure, retry_topic, delay, msg.key(), msg.value(), headers, timestamp, trace
            )
            if not self._produce_internal(batch, msg, failure, record):
                return
            self.counters.retry_forwards += 1
        if outcome.retry and attempt:
            self._retrying[tp] = _RetryState(offset, attempt + 1, frozenset(outcome.retry))
            delay = max(outcome.retry.values())
            self.counters.retries += len(outcome.retry)
            self.log.info(
                "retrying %s[%d]@%d (%s) in %.2fs, attempt %d",
                *tp, offset, ", ".join(outcome.retry), delay, attempt + 1,
                extra=record_fields(tp[0], tp[1], offset, ", ".join(outcome.retry)),
            )  # fmt: skip
            self.blocker.block(tp, offset, delay)
            batch.next_offsets[tp] = offset
            return
        self._retrying.pop(tp, None)
        batch.next_offsets[tp] = offset + 1

    def _sink_failed(
        self,
        outcome: Outcome,
        tp: TopicPartitionKey,
        offset: int,
        attempt: int,
        topic: str,
        error: KafkaError,
    ) -> bool:
        """An output could not be queued: dead-letter it if too large, else hold (True)."""
        if is_too_large(error):
            failure = Failure(
                Stage.PRODUCE, tp[0], tp[1], offset, OutputTooLargeError(error.str()),
                output_topic=topic, attempt=max(attempt, 1),
            )  # fmt: skip
            self.pipeline.decide(failure, outcome)
            return False
        self._rewind(tp, offset, f"producing to {topic} failed: {error.str()}")
        return True

    def _sink(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None,
        timestamp: int,
        partition: int = -1,
    ) -> None:
        batch, msg = self._batch, self._message
        assert batch is not None  # noqa: S101 - only called while a batch is handled
        assert msg is not None  # noqa: S101
        if self._per_record or (self._exact and self._is_exact(msg)):
            callback: Any = partial(self._delivered, batch, msg, False)
        else:
            callback = self._ack
        if failpoints.ARMED:
            failpoints.reached("process")
        if headers or partition >= 0 or timestamp <= 0:
            self._produce(batch, topic, key, value, headers, timestamp, callback, partition)
            return
        batch.pending += 1  # the common case, without building keyword dicts
        try:
            self.producer.produce(topic, value, key, on_delivery=callback, timestamp=timestamp)
        except (BufferError, KafkaException):
            batch.pending -= 1
            self._produce(batch, topic, key, value, headers, timestamp, callback, partition)

    def _acker(
        self, batch: Batch, inputs: list[Message]
    ) -> Callable[[KafkaError | None, Message], None]:
        """The one delivery callback of a batch's outputs: counts them, and reports the
        batch's first failed output (enough to rewind it; see :meth:`_lost_output`)."""
        reported = False

        def ack(err: KafkaError | None, out: Message) -> None:
            nonlocal reported
            batch.pending -= 1
            if err is None:
                self.produced += 1
            elif not reported:
                reported = True
                batch.failures.append(LostOutput(err, out.topic() or "", inputs))

        return ack

    def _is_exact(self, msg: Message) -> bool:
        """Whether ``msg``'s outputs get a delivery report each (its partition is being
        processed again after a failed output); past the rewound records that ends."""
        tp = (msg.topic() or "", msg.partition() or 0)
        last = self._exact.get(tp)
        if last is None:
            return False
        if (msg.offset() or 0) > last:
            del self._exact[tp]
            return False
        return True

    def _produce(
        self,
        batch: Batch,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | list[tuple[str, bytes | None]] | None,
        timestamp: int,
        callback: Any,
        partition: int = -1,
    ) -> bool:
        kwargs: dict[str, Any] = {"on_delivery": callback}
        if headers:
            kwargs["headers"] = headers
        if timestamp > 0:
            kwargs["timestamp"] = timestamp
        if partition >= 0:
            kwargs["partition"] = partition
        batch.pending += 1
        while True:
            try:
                self.producer.produce(topic, value, key, **kwargs)
                return True
            except BufferError:
                self.producer.poll(0.05)
            except KafkaException as exc:
                batch.pending -= 1
                self._sink_errors.append((topic, exc.args[0]))
                return False

    def _produce_internal(
        self, batch: Batch, msg: Message, failure: Failure, record: OutRecord
    ) -> bool:
        """Produce a dead-letter or retry record; on a synchronous error hold the partition."""
        topic, key, value, headers = record
        callback = partial(self._delivered, batch, msg, True)
        if self._produce(batch, topic, key, value, headers, 0, callback):
            return True
        _, error = self._sink_errors.pop()
        tp = (msg.topic() or "", msg.partition() or 0)
        self._rewind(tp, msg.offset() or 0, f"cannot write to {topic}: {error.str()}")
        return False

    def _delivered(
        self, batch: Batch, msg: Message, internal: bool, err: KafkaError | None, out: Message
    ) -> None:
        batch.pending -= 1
        if err is None:
            self.produced += 1
            if self._count_topics:
                name = out.topic() or ""
                self._produced_by_topic[name] = self._produced_by_topic.get(name, 0) + 1
            if self.state is not None:
                self.state.delivered(out.topic() or "", out.partition() or 0, out.offset() or 0)
            return
        kind = OutputTooLargeError if is_too_large(err) else KafkaOperationError
        failure = Failure(
            Stage.PRODUCE, msg.topic() or "", msg.partition() or 0, msg.offset() or 0,
            kind(err.str()), output_topic=out.topic() or "",
        )  # fmt: skip
        batch.failures.append(DeliveryFailure(failure, msg, internal))

    def _delivery_failed(self, batch: Batch, item: DeliveryFailure | LostOutput) -> None:
        """A produce failed after the batch moved on: dead-letter the input or rewind."""
        if isinstance(item, LostOutput):
            self._lost_output(item)
            return
        failure, msg = item.failure, item.message
        tp = (failure.topic, failure.partition)
        if tp not in self.assigned:
            return  # revoked meanwhile: the new owner reprocesses from the last commit
        if not item.internal and isinstance(failure.error, OutputTooLargeError):
            outcome = Outcome()
            self.pipeline.decide(failure, outcome)
            if not outcome.dead:
                return
            record = self.pipeline.dead_letter_record(
                outcome.dead[0], msg.key(), msg.value(), message_headers(msg), msg.timestamp()[1]
            )
            callback = partial(self._delivered, batch, msg, True)
            if self._produce(batch, record[0], record[1], record[2], record[3], 0, callback):
                self.counters.dead_letters += 1
                return
            self._sink_errors.clear()
        what = "dead-letter/retry topic" if item.internal else "output"
        self._rewind(tp, failure.offset, f"{what} write failed: {failure.error}")

    def _lost_output(self, item: LostOutput) -> None:
        """An output of a batch failed: rewind each of the batch's partitions to its first
        record there, whose records are then processed again with a delivery report each.

        At least once allows the repeat of the outputs that did land; a failed delivery
        (the broker unreachable for ``message.timeout.ms``, a record the topic refuses)
        is rare, and the second pass names the record, to dead-letter or hold it.
        """
        spans: dict[TopicPartitionKey, tuple[int, int]] = {}
        for msg in item.inputs:
            if msg.error() is not None:
                continue
            tp, offset = (msg.topic() or "", msg.partition() or 0), msg.offset() or 0
            first, last = spans.get(tp, (offset, offset))
            spans[tp] = (min(first, offset), max(last, offset))
        for tp, (first, last) in spans.items():
            if tp not in self.assigned:
                continue  # revoked meanwhile: the new owner reprocesses from the last commit
            self._exact[tp] = max(last, self._exact.get(tp, last))
            self._rewind(
                tp, first,
                f"an output write to {item.output_topic} failed ({item.error.str()}) for one of "
                f"offsets {first}-{last}, processed again with a delivery report each",
            )  # fmt: skip

    def _rewind(self, tp: TopicPartitionKey, offset: int, reason: str) -> None:
        """Hold ``tp`` at ``offset`` (nothing at or after it is committed) and retry later."""
        delay = self.blocker.backoff(tp)
        self.counters.rewinds += 1
        self.log.warning(
            "%s; holding %s[%d] at offset %d, retrying in %.0fs (nothing after it is committed)",
            reason, *tp, offset, delay, extra=record_fields(tp[0], tp[1], offset),
        )  # fmt: skip
        self.tracker.cap(tp, offset)
        self._retrying.pop(tp, None)
        if self._batch is not None:
            current = self._batch.next_offsets.get(tp)
            if current is None or current > offset:
                self._batch.next_offsets[tp] = offset
        self.blocker.block(tp, offset, delay)

    def _message_error(self, error: KafkaError) -> None:
        if error.code() == KafkaError._PARTITION_EOF:
            return
        if error.fatal():
            raise KafkaOperationError(f"fatal consumer error: {error.str()}")
        self.log.warning("consumer error (retried by the client): %s", error.str())

    def _read_changelog(
        self, topic: str, partition: int, start: int
    ) -> tuple[int, Iterator[tuple[bytes | None, bytes | None, int]]]:
        """The changelog partition's end, and its records from ``start`` to that end."""
        if self._restore_consumer is None:
            self._restore_consumer = Consumer(
                self.settings.client_config(
                    **{
                        "group.id": f"{self.app.group_id}-restore",
                        "enable.auto.commit": False,
                        "enable.auto.offset.store": False,
                        "isolation.level": "read_committed",
                        # Restores read to a known end, one partition after another: a
                        # long-polling fetch (500 ms by default) or its backoff would
                        # hold up the next partition's first fetch.
                        "fetch.wait.max.ms": 20,
                        "fetch.error.backoff.ms": 20,
                        "logger": logging.getLogger("streamkit.kafka"),
                    }
                )
            )
        consumer = self._restore_consumer
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=15)
        messages = read_until(consumer, {(topic, partition): (max(start, low), high)})
        records = ((m.key(), m.value(), m.offset() or 0) for m in messages)
        return high, records

    def _refresh_lag(self) -> None:
        """Lag per assigned partition from cached watermarks (no broker round trip)."""
        lag: dict[TopicPartitionKey, int] = {}
        for t, p in list(self.assigned):
            try:
                _, high = self.consumer.get_watermark_offsets(TopicPartition(t, p), cached=True)
            except KafkaException:
                continue
            done = self._committed.get((t, p))
            if done is None:
                (position,) = self.consumer.position([TopicPartition(t, p)])
                done = position.offset if position.offset >= 0 else high
            if high >= 0:
                lag[(t, p)] = max(0, high - done)
        self.lag = lag

    # -- offsets and rebalances ---------------------------------------------------------
    def _commit(self, *, asynchronous: bool, only: list[TopicPartitionKey] | None = None) -> bool:
        """Commit what is ready; False when the commit was refused (it is sent again)."""
        if self.eos:
            return True  # offsets are committed inside each batch's transaction
        ready = self.tracker.take(only)
        changed = [
            TopicPartition(t, p, o)
            for (t, p), o in ready.items()
            if self._committed.get((t, p)) != o and (t, p) in self.assigned
        ]
        if not changed:
            return True
        if failpoints.ARMED:
            failpoints.reached("produce")
        try:
            if asynchronous:
                self.consumer.commit(offsets=changed, asynchronous=True)
            else:
                self.consumer.commit(offsets=changed, asynchronous=False)
        except KafkaException as exc:
            self.log.warning("offset commit failed (will retry): %s", exc.args[0].str())
            return False
        if failpoints.ARMED:
            failpoints.reached("commit")
        self._mark_committed({(tp.topic, tp.partition): tp.offset for tp in changed})
        return True

    def _mark_committed(self, offsets: Mapping[TopicPartitionKey, int]) -> None:
        """Offsets that were committed: remembered, and their partitions' next infrastructure
        wait starts small again (at least once and exactly once alike)."""
        self._committed.update(offsets)
        for tp in offsets:
            self.blocker.succeeded(tp)

    def _on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """The result of a commit: what did not land is forgotten, so it is sent again.

        An asynchronous commit can fail after the loop moved on (a rebalance in progress,
        a coordinator change); without this the worker would believe those offsets were
        committed and never send them again.
        """
        if error is not None and error.code() == KafkaError._NO_OFFSET:
            return  # there was nothing to commit
        failed = [tp for tp in partitions if error is not None or tp.error is not None]
        for tp in failed:
            key = (tp.topic, tp.partition)
            if self._committed.get(key) == tp.offset:
                del self._committed[key]
        if failed:
            first = error or failed[0].error
            where = _describe([(tp.topic, tp.partition) for tp in failed])
            reason = first.str() if first is not None else "unknown error"
            self.log.info("offset commit of %s failed (sent again): %s", where, reason)

    def _forget(self, keys: list[TopicPartitionKey]) -> None:
        self.tracker.drop(keys)
        self.blocker.forget(keys)
        self.assigned.difference_update(keys)
        for key in keys:
            self._committed.pop(key, None)
            self._retrying.pop(key, None)
            self._exact.pop(key, None)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        keys = [(p.topic, p.partition) for p in partitions]
        if self.state is not None:
            try:
                self.state.restore(keys, self._read_changelog)
            except BaseException as exc:  # noqa: BLE001 - re-raised by the loop after consume()
                self._callback_error = exc
        self.assigned.update(keys)
        self.ever_assigned = True
        self.chain.rebalance("assigned", len(keys))
        self.log.info("assigned %s", _describe(keys))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        keys = [(p.topic, p.partition) for p in partitions]
        try:
            if not self._failed and not self.eos:
                remaining = self.producer.flush(self.options.shutdown_timeout)
                if remaining:
                    self.log.warning("%d records unacknowledged at revoke", remaining)
                self.tracker.advance(self._delivery_failed)
                self._commit(asynchronous=False, only=keys)
        except BaseException as exc:  # noqa: BLE001 - re-raised by the loop after consume()
            self._failed = True
            self._callback_error = exc
        finally:
            self._forget(keys)
            if self.state is not None:
                self.state.release(keys)
            self.chain.rebalance("revoked", len(keys))
            self.log.info("revoked %s", _describe(keys))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        keys = [(p.topic, p.partition) for p in partitions]
        self._forget(keys)
        if self.state is not None:
            self.state.release(keys)
        self.chain.rebalance("lost", len(keys))
        self.log.warning("lost %s (not committed; the new owner reprocesses)", _describe(keys))

    def _raise_callback_error(self) -> None:
        if self._callback_error is not None:
            error, self._callback_error = self._callback_error, None
            raise error

    def _shutdown(self) -> None:
        deadline = time.monotonic() + self.options.shutdown_timeout
        try:
            remaining = self.producer.flush(max(0.0, deadline - time.monotonic() - 2))
            if remaining:
                self.log.warning("%d records unacknowledged at shutdown", remaining)
            if not self._failed:
                self.tracker.advance(self._delivery_failed)
            else:
                with contextlib.suppress(_StoppedAtFailureError):  # only batches before it
                    self.tracker.advance(_stop_at_failure)
            # Members stopping together: when another one leaves first, the group moves to
            # a new generation and refuses this commit (ILLEGAL_GENERATION) until librdkafka
            # has rejoined in the background; sent again until it lands or time is up.
            while not self._commit(asynchronous=False) and time.monotonic() < deadline - 2:
                time.sleep(0.2)
        except BaseException:  # a failure here must not hide the one that stopped us
            self.log.exception("error while shutting down")
        finally:
            self._failed = True  # the revoke callback during close must not commit again
            self.consumer.close()
            if self._restore_consumer is not None:
                self._restore_consumer.close()
            if self.state is not None:
                self.state.close()
            c = self.counters
            self.log.info(
                "stopped: consumed %d, produced %d, filtered %d, retried %d, "
                "dead-lettered %d, sent to retry topics %d, rewound %d",
                self.consumed, self.produced, self.filtered + self.pipeline.fast_filtered,
                c.retries, c.dead_letters,
                c.retry_forwards, c.rewinds,
            )  # fmt: skip


class _StoppedAtFailureError(Exception):
    """Ends an advance at the first failed batch during a shutdown after a failure."""


def _stop_at_failure(batch: Batch, item: DeliveryFailure | LostOutput) -> None:
    if isinstance(item, LostOutput):
        raise _StoppedAtFailureError(f"an output write to {item.output_topic} failed")
    raise _StoppedAtFailureError(item.failure.describe())


def _describe(keys: list[TopicPartitionKey]) -> str:
    if not keys:
        return "nothing"
    return ", ".join(f"{t}[{p}]" for t, p in sorted(keys))
