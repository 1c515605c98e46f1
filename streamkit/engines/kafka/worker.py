"""The Kafka worker: one consumer-group member running an app until asked to stop.

Each loop takes a batch, hands its records to their partitions' tasks (see
:mod:`streamkit.engines.kafka.engine`), serves delivery reports, and every commit
interval commits what is complete (see :mod:`streamkit.engines.kafka.group`). Under
``exactly_once`` a batch's outputs, changelog writes, dead letters and input offsets are
one Kafka transaction instead. A stop drains: flush, commit, leave the group.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, Message, Producer, TopicPartition

from streamkit.app import App
from streamkit.engines.kafka.access import check_access, denied
from streamkit.engines.kafka.clients import (
    TRANSACTION_TIMEOUT_MS,
    ChangelogReader,
    check_topics,
    client_id,
    consumer_config,
    producer_config,
    watermarks,
)
from streamkit.engines.kafka.group import GroupMember
from streamkit.engines.kafka.tables import TableFeed
from streamkit.engines.kafka.transactions import Transactions, transactional_id
from streamkit.errors import ConfigError
from streamkit.failures.failure import FailureHandler
from streamkit.permissions import permissions
from streamkit.processor import Middleware
from streamkit.records import TP
from streamkit.runtime import failpoints
from streamkit.runtime.offsets import Chunk, DeliveryFailure, LostOutput
from streamkit.runtime.pipeline import Pipeline
from streamkit.settings import Settings
from streamkit.state.partition import PartitionState
from streamkit.state.stores import configure_rocksdb
from streamkit.state.window_store import window_store

__all__ = ["KafkaWorker", "WorkerOptions"]


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
        max_pending: records of concurrent processors taken past the committable offset
            (queued, running, retrying, done behind an unfinished one) above which their
            inputs are paused until half are left (None: twenty per slot of concurrency, at
            least 1000); it bounds the duplicates after a crash.
        max_pending_bytes: the same bound in bytes of those records' keys and values.
        consumer: extra librdkafka consumer properties.
        producer: extra librdkafka producer properties.
        restarts: how often the supervisor restarted this worker before this process
            (``streamkit_worker_restarts``).
    """

    worker_id: str = "0"
    batch_size: int = 500
    commit_interval: float = 1.0
    shutdown_timeout: float = 30.0
    max_in_flight: int = 4000
    max_pending: int | None = None
    max_pending_bytes: int = 64 << 20
    consumer: Mapping[str, Any] | None = None
    producer: Mapping[str, Any] | None = None
    restarts: int = 0


class KafkaWorker(GroupMember):
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
        self.settings = settings or Settings.from_env()
        configure_rocksdb(self.settings.rocksdb_memory_mb)
        self.options = options or WorkerOptions()
        super().__init__(
            Pipeline(app, self.settings, failure_handler, middleware),
            logging.getLogger(f"streamkit.worker.{self.options.worker_id}"),
            batch_size=self.options.batch_size,
            max_in_flight=self.options.max_in_flight,
            max_pending=self.options.max_pending,
            max_pending_bytes=self.options.max_pending_bytes,
            state_dir=self.settings.state_dir / "stores" / app.group_id,
        )
        self.init_group()
        self.exactly_once = app.guarantee == "exactly_once"
        self.track_deliveries = not self.exactly_once
        self.shutdown_timeout = self.options.shutdown_timeout
        if app.tables:
            self.table_feed = TableFeed(
                self.settings, self.pipeline, self.log, exactly_once=self.exactly_once
            )
        self.last_poll = time.monotonic()
        self._lag_at = 0.0
        self._stopping = False
        name = client_id(app.name, self.options.worker_id)
        self.consumer = Consumer(
            consumer_config(
                self.settings,
                app.group_id,
                exactly_once=self.exactly_once,
                extra={
                    "client.id": name,
                    "on_commit": self.on_commit,
                    **dict(self.options.consumer or {}),
                },
            )
        )
        self._producer_config = producer_config(
            self.settings, {"client.id": name, **dict(self.options.producer or {})}
        )
        self.transactions: Transactions | None = None
        self._checked = False  # check_topics ran (the host runs it before run())
        if self.exactly_once:
            self._producer_config["transactional.id"] = transactional_id(
                app.group_id, self.options.worker_id
            )
            self._producer_config.setdefault("transaction.timeout.ms", TRANSACTION_TIMEOUT_MS)
        self.producer = Producer(self._producer_config)  # under EOS: replaced once fenced in
        self.restore = ChangelogReader(
            self.settings,
            self.topology,
            int(self._producer_config.get("transaction.timeout.ms", TRANSACTION_TIMEOUT_MS)),
        )

    # -- control ------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Ask the loop to stop after the current batch (safe from a signal handler)."""
        self._stopping = True

    def check_topics(self) -> None:
        """Fail fast when the broker does not answer, the principal lacks a permission, a
        topic of the app is missing or a table is not co-partitioned with its streams;
        read the global tables. Once: :meth:`run` skips it when the host ran it."""
        check_access(self.app, self.settings)
        partitions = check_topics(self.consumer, self.settings, self.topology)
        if self.exactly_once:  # its transactional id is authorized here too
            need = [p for p in permissions(self.app) if p.resource == "transactional-id"]
            self.transactions = Transactions(
                self.consumer,
                lambda: Producer(self._producer_config),
                self.log,
                denied=denied(self.settings, need),
            )
            self.producer = self.transactions.producer
        if self.table_feed is not None:
            self.table_feed.check(partitions)
            self.table_feed.start(partitions)
        self._checked = True

    def state_get(
        self, store: str, key: str, since: int = 0, until: int | None = None
    ) -> tuple[int, Any] | None:
        """The partition and state of ``key`` in ``store`` where this worker holds it; for
        a window store, its windows overlapping ``[since, until)``."""
        now = self.now_ms()
        spec = next((w for w in self.app.windows if w.store == store), None)
        for task in list(self.tasks.values()):  # read from HTTP threads
            state = task.state
            if state is None or store not in state.specs:
                continue
            if spec is not None:
                windows = window_store(state, spec, now).windows(key, since, until)
                if windows:
                    return task.partition, windows
                continue
            entry = state.get(store, key, now)
            if entry is not None:
                return task.partition, entry.state
        return None

    def partition_states(self) -> list[PartitionState]:
        """The state of every partition held here."""
        return [t.state for t in list(self.tasks.values()) if t.state is not None]

    def run(self) -> None:
        """Consume and process until :meth:`request_stop`; then flush, commit and leave.

        Raises :class:`~streamkit.errors.ProcessingFailedError` when the failure policy
        says stop, after committing only what precedes the failed record.
        """
        if not self._checked:
            self.check_topics()
        self.subscribe()
        self.log.info(
            "consuming %s as group %s", ", ".join(self.topology.consumed()), self.app.group_id
        )
        last_commit = time.monotonic()
        try:
            while not self._stopping:
                self.wake()
                busy = self.concurrent is not None and self.concurrent.pending > 0
                messages = self.next_batch(0.0 if busy else 0.2)
                self.last_poll = time.monotonic()
                self.raise_callback_error()
                if self.table_feed is not None:
                    self.table_feed.poll()
                if self.transactions is not None:
                    if messages or self.tick_due():
                        self._handle_transaction(messages, self.transactions)
                else:
                    if messages:
                        self.handle(messages)
                    self.settle_concurrent(0.01 if busy and not messages else 0.0)
                    self.tick()
                self.deliveries()
                if time.monotonic() - last_commit >= self.options.commit_interval:
                    self.commit(asynchronous=True)
                    last_commit = time.monotonic()
                    self.refresh_lag()
        except BaseException:
            self.failed = True
            raise
        finally:
            self._shutdown()

    # -- exactly once -----------------------------------------------------------------------
    def _handle_transaction(self, messages: list[Message], txn: Transactions) -> None:
        """Exactly once: the batch's records, changelog writes and offsets in one transaction."""
        states = self.partition_states()
        for state in states:
            state.begin()
        txn.begin()
        try:
            chunks = self.handle(messages) + self.tick()
            if failpoints.ARMED:
                failpoints.reached("transaction")
        except BaseException:
            txn.abort()
            for state in states:
                state.rollback()
            raise
        offsets: dict[TP, int] = {}
        for c in chunks:
            if c.task.tp not in self.tasks:
                continue
            if c.next_offset is not None:
                offsets[c.task.tp] = c.next_offset
            elif c.task.committed is not None:
                # A timer's chunk moves no offset, but its offset goes in all the same:
                # the group coordinator refuses it from a member that lost the partition,
                # so a zombie cannot commit the timer's state changes after the restore.
                offsets.setdefault(c.task.tp, c.task.committed)
        if txn.commit(offsets):
            self.mark_committed(offsets)
            for state in states:
                state.commit()
            return
        self.producer = txn.producer
        for state in states:
            state.rollback()
        for tp in offsets:
            self._rewind_to_committed(tp)

    def _rewind_to_committed(self, tp: TP) -> None:
        """After an aborted transaction: back to the last committed offset, after a pause."""
        task = self.tasks[tp]
        committed = task.committed
        if committed is None:
            (found,) = self.consumer.committed([TopicPartition(*tp)], timeout=30)
            committed = found.offset if found.offset >= 0 else None
        if committed is None:
            committed, _ = watermarks(self.consumer, *tp)
        task.retrying = None
        task.hold_at(committed, task.backoff.next())

    # -- stopping -------------------------------------------------------------------------
    def _shutdown(self) -> None:
        deadline = time.monotonic() + self.options.shutdown_timeout
        try:
            if self.concurrent is not None and not self.failed:  # what runs ends, and is written
                self.concurrent.drain(self.tasks.values(), lambda: time.monotonic() > deadline - 5)
            remaining = self.producer.flush(max(0.0, deadline - time.monotonic() - 2))
            if remaining:
                self.log.warning("%d records unacknowledged at shutdown", remaining)
            if not self.failed:
                self.advance()
            else:
                for task in list(self.tasks.values()):
                    with contextlib.suppress(_StoppedAtFailureError):  # only chunks before it
                        task.offsets.advance(_stop_at_failure)
            # Members stopping together: when another one leaves first, the group moves to
            # a new generation and refuses this commit (ILLEGAL_GENERATION) until librdkafka
            # has rejoined in the background; sent again until it lands or time is up.
            while not self.commit(asynchronous=False) and time.monotonic() < deadline - 2:
                time.sleep(0.2)
        except BaseException:  # a failure here must not hide the one that stopped us
            self.log.exception("error while shutting down")
        finally:
            self.failed = True  # the revoke callback during close must not commit again
            self.consumer.close()
            if self.concurrent is not None:
                self.concurrent.close()
            self.restore.close()
            if self.table_feed is not None:
                self.table_feed.close()
            self.close_tasks(list(self.tasks))
            c = self.counters
            self.log.info(
                "stopped: consumed %d, produced %d, filtered %d, retried %d, "
                "dead-lettered %d, sent to retry topics %d, rewound %d",
                self.consumed,
                self.produced,
                self.filtered,
                c.retries,
                c.dead_letters,
                c.retry_forwards,
                c.rewinds,
            )


class _StoppedAtFailureError(Exception):
    """Ends an advance at the first failed chunk during a shutdown after a failure."""


def _stop_at_failure(chunk: Chunk, item: DeliveryFailure | LostOutput) -> None:
    if isinstance(item, LostOutput):
        raise _StoppedAtFailureError(f"an output write to {item.output_topic} failed")
    raise _StoppedAtFailureError(item.failure.describe())
