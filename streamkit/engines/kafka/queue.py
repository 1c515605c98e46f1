"""The queue worker: a member of the app's Kafka share group (see
:mod:`streamkit.runtime.queues` for what a queue processor promises and gives up).

Each loop polls a batch of acquired records and runs each through the same
:class:`~streamkit.runtime.pipeline.Pipeline` as every engine, with the record's delivery
count as its attempt, and settles each outcome through the same walk as a partition's
task (:mod:`streamkit.runtime.settle`), by acknowledgement. Then it waits for the broker
to acknowledge every output and dead letter of the batch, and only then acknowledges each
input: ACCEPT when its records are
written, RELEASE when it is to be retried or a write failed (it comes again, maybe to
another worker). A dead letter that cannot be written stops the worker (the record is
released, never accepted), as a DLQ failure stops every worker.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from confluent_kafka import AcknowledgeType, KafkaError, KafkaException, Producer, ShareConsumer
from confluent_kafka import Message as KafkaMessage
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import AlterConfigOpType, ConfigEntry, ConfigResource
from confluent_kafka.admin._resource import ResourceType

from streamkit.app import App
from streamkit.engines.kafka.access import check_access
from streamkit.engines.kafka.clients import check_topics, client_id, producer_config
from streamkit.engines.kafka.delivery import produce_error
from streamkit.engines.kafka.worker import WorkerOptions
from streamkit.errors import ConfigError, KafkaOperationError
from streamkit.failures.failure import Failure, FailureHandler
from streamkit.processor import Middleware
from streamkit.records import TP, Headers, message_headers, record_fields
from streamkit.runtime.outcome import OutRecord, Unqueued
from streamkit.runtime.pipeline import Pipeline
from streamkit.runtime.settle import settle
from streamkit.settings import Settings

__all__ = ["QueueWorker"]

_DELIVERY_LIMIT = "group.share.delivery.count.limit"
_RESET = "share.auto.offset.reset"
_CONFIG_VISIBLE_WAIT = 15.0  # seconds for the broker to show the group's new config


class _Acquired:
    """One acquired record: its writes in flight, and whether it must come again."""

    __slots__ = ("dead_letter_failed", "failed", "msg", "pending", "release")

    def __init__(self, msg: KafkaMessage) -> None:
        self.msg = msg
        self.pending = 0
        self.failed: str | None = None
        self.dead_letter_failed = False
        self.release = False

    def on_delivery(
        self, delivered: Counter[str], dead_letter: bool, error: KafkaError | None, msg: Any
    ) -> None:
        self.pending -= 1
        if error is not None:
            self.failed = error.str()
            self.dead_letter_failed |= dead_letter
        else:
            delivered[msg.topic()] += 1


class QueueWorker:
    """Runs a queue app as a member of its share group until asked to stop.

    Reads like a :class:`~streamkit.engines.kafka.KafkaWorker` for the HTTP endpoints and
    metrics (``last_poll``, ``ever_assigned``, ``assigned``, counters); a share group
    assigns no partitions, so ``assigned`` stays empty and readiness is the first poll
    that returned records or answered empty after joining.
    """

    def __init__(
        self,
        app: App,
        *,
        settings: Settings | None = None,
        options: WorkerOptions | None = None,
        failure_handler: FailureHandler | None = None,
        middleware: Sequence[Middleware] = (),
    ) -> None:
        self.settings = settings or Settings.from_env()
        self.options = options or WorkerOptions()
        self.app = app
        self.pipeline = Pipeline(app, self.settings, failure_handler, middleware)
        self.topology = self.pipeline.topology
        self.log = logging.getLogger(f"streamkit.worker.{self.options.worker_id}")
        name = client_id(app.name, self.options.worker_id)
        self.consumer = ShareConsumer(
            self.settings.client_config(
                for_client="consumer",
                **{
                    "group.id": app.group_id,
                    "client.id": name,
                    "share.acknowledgement.mode": "explicit",
                    # What one poll returns. It does not bound what the client acquires:
                    # the broker hands out whole producer batches (see the README).
                    "max.poll.records": self.options.batch_size,
                    **dict(self.options.consumer or {}),
                },
            )
        )
        self.producer = Producer(
            producer_config(self.settings, {"client.id": name, **dict(self.options.producer or {})})
        )
        self.last_poll = time.monotonic()
        self.ever_assigned = False
        self.assigned: set[TP] = set()
        self.blocked_partitions = 0
        self.concurrency_stats: dict[str, tuple[int, int]] = {}
        self.lag: dict[TP, int] = {}
        self.restoring = 0
        self.restored_records = 0  # a queue app has no state to restore
        self.unmatched: dict[str, int] = {}
        self.counts: Counter[str] = Counter()
        self._delivered: Counter[str] = Counter()  # per topic, for middleware's on_produced
        self._stopping = False
        self._checked = False

    # -- control ------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Ask the loop to stop after the current batch (safe from a signal handler)."""
        self._stopping = True

    def state_get(
        self, store: str, key: str, since: int = 0, until: int | None = None
    ) -> tuple[int, Any] | None:
        """A queue app keeps no state: always None."""
        return None

    def check_topics(self) -> None:
        """Fail fast on a missing topic or permission, or retries the broker's delivery
        limit would cut short; start a new share group at the earliest offset."""
        check_access(self.app, self.settings)
        check_topics(self.producer, self.settings, self.topology)
        admin = AdminClient(self.settings.client_config(for_client="admin"))
        self._check_delivery_limit(admin)
        self._start_at_earliest(admin)
        self._checked = True

    def _check_delivery_limit(self, admin: AdminClient) -> None:
        limit = _broker_config(admin, _DELIVERY_LIMIT)
        if limit is None:
            return
        for spec in self.app.processors:
            deliveries = self.app.retry_policy(spec.name).attempts
            if deliveries > int(limit):
                raise ConfigError(
                    f"queue processor {spec.name} retries to {deliveries} deliveries, but the "
                    f"broker archives a record after {_DELIVERY_LIMIT}={limit} deliveries, "
                    "before its dead letter: lower retries= or raise the broker's limit"
                )

    def _start_at_earliest(self, admin: AdminClient) -> None:
        """A share group starts at the latest offset unless told; the app's records from
        before its first worker started are work too."""
        resource = ConfigResource(
            ResourceType.GROUP,
            self.app.group_id,
            incremental_configs=[
                ConfigEntry(
                    _RESET,
                    "earliest",
                    incremental_operation=AlterConfigOpType.SET,
                )
            ],
        )
        try:
            admin.incremental_alter_configs([resource])[resource].result(timeout=15)
            if _seen_earliest(admin, self.app.group_id, _CONFIG_VISIBLE_WAIT):
                return
            problem = f"the broker did not show it within {_CONFIG_VISIBLE_WAIT:.0f}s"
        except KafkaException as exc:
            problem = exc.args[0].str()
        self.log.warning(
            "share group %s may start at the latest offset, not the earliest: setting its "
            "share.auto.offset.reset=earliest failed (%s)",
            self.app.group_id,
            problem,
        )

    def run(self) -> None:
        """Poll, process and acknowledge until :meth:`request_stop`; then leave the group.

        Raises :class:`~streamkit.errors.ProcessingFailedError` when the failure policy
        says stop, and :class:`~streamkit.errors.KafkaOperationError` when a dead letter
        cannot be written; the records of the batch are released, not accepted.
        """
        if not self._checked:
            self.check_topics()
        inputs = sorted({spec.input for spec in self.app.processors})
        self.consumer.subscribe(inputs)
        self.log.info("consuming %s as share group %s", ", ".join(inputs), self.app.group_id)
        try:
            while not self._stopping:
                batch = self.consumer.poll(0.5)
                self.last_poll = time.monotonic()
                self.ever_assigned = True
                self._handle(list(batch))
        finally:
            self._shutdown()

    # -- the batch ------------------------------------------------------------------------
    def _handle(self, batch: list[KafkaMessage]) -> None:
        acquired: list[_Acquired] = []
        try:
            for msg in batch:
                error = msg.error()
                if error is not None:
                    if error.fatal():
                        raise KafkaOperationError(f"share consumer failed: {error.str()}")
                    self.log.warning("share consumer: %s", error.str())
                    continue
                record = _Acquired(msg)
                acquired.append(record)
                self._process(record)
            remaining = self.producer.flush(self.options.shutdown_timeout)
        except BaseException:
            for record in acquired:  # none of them is done: they come again
                self.consumer.acknowledge(record.msg, AcknowledgeType.RELEASE)
            raise
        self._acknowledge(acquired, remaining)

    def _process(self, record: _Acquired) -> None:
        msg = record.msg
        headers: Headers = message_headers(msg)
        self.counts["consumed"] += 1
        self.pipeline.chain.consumed(msg.topic() or "", 1)
        attempt = msg.delivery_count() or 1
        outcome = self.pipeline.process(msg, _Sink(self, record), headers=headers, attempt=attempt)
        settlement = _ByAcknowledgement(self, record)
        settle(self.pipeline, settlement, msg, outcome, headers, msg.timestamp()[1], attempt)
        self.counts["filtered"] += outcome.filtered

    def _produce(
        self,
        record: _Acquired,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None,
        timestamp: int = 0,
        partition: int = -1,
        *,
        dead_letter: bool = False,
    ) -> Unqueued | None:
        delivered = self._delivered
        callback = lambda error, msg: record.on_delivery(delivered, dead_letter, error, msg)  # noqa: E731
        while True:
            try:
                self.producer.produce(
                    topic,
                    value,
                    key,
                    partition,
                    on_delivery=callback,
                    timestamp=timestamp,
                    headers=list(headers) if headers else None,
                )
            except BufferError:  # the producer's queue is full: let deliveries drain it
                self.producer.poll(0.1)
                continue
            except KafkaException as exc:
                if dead_letter:
                    record.failed = exc.args[0].str()
                    record.dead_letter_failed = True
                    return None
                return produce_error(topic, exc.args[0])
            record.pending += 1
            self.counts["produced"] += 1
            return None

    def _acknowledge(self, acquired: list[_Acquired], remaining: int) -> None:
        lost_dead_letter = None
        for record in acquired:
            if remaining and record.pending > 0 and record.failed is None:
                record.failed = "not acknowledged by the broker in time"
            if record.failed is not None or record.release:
                self.consumer.acknowledge(record.msg, AcknowledgeType.RELEASE)
                if record.failed is not None:
                    self.log.warning(
                        "released %s[%d]@%d: %s",
                        record.msg.topic(),
                        record.msg.partition(),
                        record.msg.offset(),
                        record.failed,
                    )
                if record.dead_letter_failed:
                    lost_dead_letter = record
            else:
                self.consumer.acknowledge(record.msg, AcknowledgeType.ACCEPT)
                self.counts["accepted"] += 1
        if acquired:
            self.consumer.commit_async()
        if self._delivered:
            self.pipeline.chain.produced(dict(self._delivered))
            self._delivered.clear()
        if lost_dead_letter is not None:
            msg = lost_dead_letter.msg
            raise KafkaOperationError(
                f"the dead letter of {msg.topic()}[{msg.partition()}]@{msg.offset()} could not "
                f"be written ({lost_dead_letter.failed}); the record was released, not "
                "accepted, and this worker stops"
            )

    def _shutdown(self) -> None:
        try:
            self.producer.flush(self.options.shutdown_timeout)
            self.consumer.commit_sync(timeout=10)
        except KafkaException as exc:
            self.log.warning("committing acknowledgements at shutdown failed: %s", exc)
        finally:
            self.consumer.close()
            c = self.counts
            self.log.info(
                "stopped: consumed %d, accepted %d, released %d, produced %d, filtered %d, "
                "dead-lettered %d",
                c["consumed"],
                c["accepted"],
                c["released"],
                c["produced"],
                c["filtered"],
                c["dead_letters"],
            )


class _ByAcknowledgement:
    """An acquired record of the share group, settled by acknowledgement (see
    :class:`~streamkit.runtime.settle.Settlement`): released to come again, or accepted
    once the batch's writes are acknowledged."""

    __slots__ = ("_record", "_worker")

    def __init__(self, worker: QueueWorker, record: _Acquired) -> None:
        self._worker = worker
        self._record = record

    def write(self, record: OutRecord) -> bool:
        """Queue ``record``; one that cannot be is counted on the acquired record, which is
        released (and the worker stops, as a DLQ failure stops every worker)."""
        self._worker._produce(self._record, *record, dead_letter=True)
        return True

    def write_failed(self, reason: str) -> None:
        """An output could not be queued: the record is released, to come again."""
        self._record.failed = reason

    def wrote(self, kind: str, record: OutRecord, failure: Failure | None) -> None:
        """Count and log a dead letter."""
        if kind != "dead_letter" or failure is None:
            return
        worker, msg = self._worker, self._record.msg
        worker.counts["dead_letters"] += 1
        worker.log.warning(
            "dead-lettered to %s after %d deliveries: %s",
            record[0],
            msg.delivery_count() or 1,
            failure.describe(),
            extra=record_fields(
                failure.topic, failure.partition, failure.offset, failure.processor
            ),
        )

    def retry(self, delays: dict[str, float], attempt: int) -> None:
        """Release the record: it comes again, its delivery count its next attempt."""
        self._record.release = True
        self._worker.counts["released"] += 1

    def done(self) -> None:
        """Accepted once the batch's writes are acknowledged (see ``_acknowledge``)."""


class _Sink:
    """The pipeline's sink for one acquired record: its outputs, counted on it."""

    __slots__ = ("_record", "_worker")

    def __init__(self, worker: QueueWorker, record: _Acquired) -> None:
        self._worker = worker
        self._record = record

    def __call__(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None,
        timestamp: int,
        partition: int = -1,
    ) -> Unqueued | None:
        return self._worker._produce(self._record, topic, key, value, headers, timestamp, partition)


def _seen_earliest(admin: AdminClient, group: str, wait: float) -> bool:
    """Whether the broker shows ``share.auto.offset.reset=earliest`` for ``group`` within
    ``wait`` seconds.

    The broker applies a group config from the metadata log after the alter has answered;
    a share partition first fetched before that starts at the latest offset, for good.
    """
    resource = ConfigResource(ResourceType.GROUP, group)
    deadline = time.monotonic() + wait
    while _config_value(admin, resource, _RESET) != "earliest":
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _broker_config(admin: AdminClient, name: str) -> str | None:
    """A broker's value of ``name`` (any broker: the cluster's are alike), None unknown."""
    try:
        brokers = admin.list_topics(timeout=10).brokers
        return _config_value(admin, ConfigResource(ResourceType.BROKER, str(min(brokers))), name)
    except (KafkaException, ValueError):
        return None


def _config_value(admin: AdminClient, resource: ConfigResource, name: str) -> str | None:
    """The value of ``name`` the broker describes for ``resource`` (None: it has none);
    raises :class:`KafkaException` when the broker does not answer."""
    entry = admin.describe_configs([resource])[resource].result(timeout=10).get(name)
    return None if entry is None else entry.value
