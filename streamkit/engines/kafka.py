"""The Kafka engine: one worker = one consumer-group member running the app's pipeline.

The loop works per batch: ``consume(num_messages=N)``, decode → process → encode →
``produce`` for each record, delivery reports served once per batch. At least once: an
input offset is committed only after every record derived from it, and everything before
it in its partition, is acknowledged by the broker (``acks=all``, idempotent producer).
Revoked partitions are flushed and committed up to what was acknowledged, then forgotten;
lost partitions are forgotten without a commit.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from streamkit.app import App
from streamkit.errors import ConfigError, KafkaOperationError
from streamkit.ops.console import message_headers
from streamkit.runtime.failure import Failure, FailureHandler, Stage
from streamkit.runtime.offsets import Batch, OffsetTracker, TopicPartitionKey
from streamkit.runtime.pipeline import Pipeline
from streamkit.settings import Settings

__all__ = ["KafkaWorker", "WorkerOptions"]


@dataclass(frozen=True)
class WorkerOptions:
    """Tuning of one worker.

    Attributes:
        worker_id: names the worker in logs and in its Kafka client id.
        batch_size: records taken per ``consume`` call.
        commit_interval: seconds between (asynchronous) offset commits.
        shutdown_timeout: seconds a graceful stop may take (flush, commit, leave).
        max_in_flight: batches awaiting acknowledgement before the loop waits.
        consumer: extra librdkafka consumer properties.
        producer: extra librdkafka producer properties.
    """

    worker_id: str = "0"
    batch_size: int = 500
    commit_interval: float = 1.0
    shutdown_timeout: float = 30.0
    max_in_flight: int = 8
    consumer: Mapping[str, Any] | None = None
    producer: Mapping[str, Any] | None = None


class KafkaWorker:
    """Runs an :class:`App` as a member of its consumer group until asked to stop."""

    def __init__(
        self,
        app: App,
        *,
        settings: Settings | None = None,
        options: WorkerOptions | None = None,
        failure_handler: FailureHandler | None = None,
    ) -> None:
        self.app = app
        self.settings = settings or Settings.from_env()
        self.options = options or WorkerOptions()
        self.pipeline = Pipeline(app, self.settings, failure_handler)
        self.log = logging.getLogger(f"streamkit.worker.{self.options.worker_id}")
        self.tracker = OffsetTracker()
        self.consumed = 0
        self.produced = 0
        self.filtered = 0
        self.assigned: set[TopicPartitionKey] = set()
        self._committed: dict[TopicPartitionKey, int] = {}
        self._stopping = False
        self._failed = False
        self._callback_error: BaseException | None = None
        self._batch: Batch | None = None
        self._source: tuple[str, int, int] = ("", -1, -1)
        client_id = f"{app.name}-w{self.options.worker_id}-{os.getpid()}"
        kafka_log = logging.getLogger("streamkit.kafka")
        self.consumer = Consumer(
            self.settings.client_config(
                **{
                    "group.id": app.group_id,
                    "client.id": client_id,
                    "partition.assignment.strategy": "cooperative-sticky",
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    "auto.offset.reset": "earliest",
                    "logger": kafka_log,
                    **dict(self.options.consumer or {}),
                }
            )
        )
        self.producer = Producer(
            self.settings.client_config(
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
        )

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
        missing = sorted(n for n in names if n not in metadata.topics)
        if missing:
            raise ConfigError(
                f"topics of app {self.app.name} do not exist: {', '.join(missing)} "
                "(create them with `streamkit topics create MODULE`)"
            )

    def run(self) -> None:
        """Consume and process until :meth:`request_stop`; then flush, commit and leave.

        Raises the failure handler's error (by default
        :class:`~streamkit.errors.ProcessingFailedError`) after committing only what
        precedes the failed record.
        """
        self.check_topics()
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
                messages = self.consumer.consume(num_messages=self.options.batch_size, timeout=0.2)
                self._raise_callback_error()
                if messages:
                    self._handle(messages)
                self.producer.poll(0)
                self.tracker.advance(self._fail)
                while self.tracker.in_flight > self.options.max_in_flight:
                    self.producer.poll(0.05)
                    self.tracker.advance(self._fail)
                if time.monotonic() - last_commit >= self.options.commit_interval:
                    self._commit(asynchronous=True)
                    last_commit = time.monotonic()
        except BaseException:
            self._failed = True
            raise
        finally:
            self._shutdown()

    # -- the batch ----------------------------------------------------------------------
    def _handle(self, messages: list[Message]) -> None:
        batch = self.tracker.begin()
        self._batch = batch
        process = self.pipeline.process
        sink = self._sink
        next_offsets = batch.next_offsets
        for msg in messages:
            error = msg.error()
            if error is not None:
                self._message_error(error)
                continue
            topic = msg.topic() or ""
            partition = msg.partition() or 0
            offset = msg.offset() or 0
            self._source = (topic, partition, offset)
            outcome = process(
                topic,
                partition,
                offset,
                msg.timestamp()[1],
                msg.key(),
                msg.value(),
                message_headers(msg),
                sink,
            )
            self.filtered += outcome.filtered
            next_offsets[(topic, partition)] = offset + 1
        self.consumed += len(messages)
        batch.sealed = True
        self._batch = None

    def _sink(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None,
        timestamp: int,
    ) -> None:
        batch = self._batch
        assert batch is not None  # noqa: S101 - only called while a batch is handled
        callback = partial(self._delivered, batch, self._source)
        kwargs: dict[str, Any] = {"on_delivery": callback}
        if headers:
            kwargs["headers"] = headers
        if timestamp > 0:
            kwargs["timestamp"] = timestamp
        batch.pending += 1
        while True:
            try:
                self.producer.produce(topic, value, key, **kwargs)
                return
            except BufferError:
                self.producer.poll(0.05)
            except KafkaException as exc:
                batch.pending -= 1
                src_topic, partition, offset = self._source
                self.pipeline.failure_handler.on_failure(
                    Failure(
                        Stage.PRODUCE,
                        src_topic,
                        partition,
                        offset,
                        KafkaOperationError(exc.args[0].str()),
                        output_topic=topic,
                    )
                )
                return

    def _delivered(
        self, batch: Batch, source: tuple[str, int, int], err: KafkaError | None, msg: Message
    ) -> None:
        batch.pending -= 1
        if err is None:
            self.produced += 1
            return
        topic, partition, offset = source
        batch.failures.append(
            Failure(
                Stage.PRODUCE,
                topic,
                partition,
                offset,
                KafkaOperationError(err.str()),
                output_topic=msg.topic() or "",
            )
        )

    def _fail(self, failure: Failure) -> None:
        self.pipeline.failure_handler.on_failure(failure)

    def _message_error(self, error: KafkaError) -> None:
        if error.code() == KafkaError._PARTITION_EOF:
            return
        if error.fatal():
            raise KafkaOperationError(f"fatal consumer error: {error.str()}")
        self.log.warning("consumer error (retried by the client): %s", error.str())

    # -- offsets and rebalances ---------------------------------------------------------
    def _commit(self, *, asynchronous: bool, only: list[TopicPartitionKey] | None = None) -> None:
        ready = self.tracker.take(only)
        changed = [
            TopicPartition(t, p, o)
            for (t, p), o in ready.items()
            if self._committed.get((t, p)) != o and (t, p) in self.assigned
        ]
        if not changed:
            return
        try:
            if asynchronous:
                self.consumer.commit(offsets=changed, asynchronous=True)
            else:
                self.consumer.commit(offsets=changed, asynchronous=False)
        except KafkaException as exc:
            self.log.warning("offset commit failed (will retry): %s", exc.args[0].str())
            return
        for tp in changed:
            self._committed[(tp.topic, tp.partition)] = tp.offset

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        keys = [(p.topic, p.partition) for p in partitions]
        self.assigned.update(keys)
        self.log.info("assigned %s", _describe(keys))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        keys = [(p.topic, p.partition) for p in partitions]
        try:
            if not self._failed:
                remaining = self.producer.flush(self.options.shutdown_timeout)
                if remaining:
                    self.log.warning("%d records unacknowledged at revoke", remaining)
                self.tracker.advance(self._fail)
                self._commit(asynchronous=False, only=keys)
        except BaseException as exc:  # noqa: BLE001 - re-raised by the loop after consume()
            self._failed = True
            self._callback_error = exc
        finally:
            self.tracker.drop(keys)
            self.assigned.difference_update(keys)
            for key in keys:
                self._committed.pop(key, None)
            self.log.info("revoked %s", _describe(keys))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        keys = [(p.topic, p.partition) for p in partitions]
        self.tracker.drop(keys)
        self.assigned.difference_update(keys)
        for key in keys:
            self._committed.pop(key, None)
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
                self.tracker.advance(self._fail)
            else:
                with contextlib.suppress(_StoppedAtFailureError):  # only batches before the failure
                    self.tracker.advance(_stop_at_failure)
            self._commit(asynchronous=False)
        except BaseException:  # a failure here must not hide the one that stopped us
            self.log.exception("error while shutting down")
        finally:
            self._failed = True  # the revoke callback during close must not commit again
            self.consumer.close()
            self.log.info(
                "stopped: consumed %d, produced %d, filtered %d",
                self.consumed,
                self.produced,
                self.filtered,
            )


class _StoppedAtFailureError(Exception):
    """Ends an advance at the first failed batch during a shutdown after a failure."""


def _stop_at_failure(failure: Failure) -> None:
    raise _StoppedAtFailureError(failure.describe())


def _describe(keys: list[TopicPartitionKey]) -> str:
    if not keys:
        return "nothing"
    return ", ".join(f"{t}[{p}]" for t, p in sorted(keys))
