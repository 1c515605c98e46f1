"""Exactly once: one Kafka transaction per batch (outputs, changelog, dead letters, offsets).

librdkafka's transactional errors are treated by class: a retriable commit is retried; an
abortable one aborts (the caller rewinds its partitions and rolls state back); a fatal or
still-ambiguous one re-creates the producer (``init_transactions`` fences the old one and
resolves its open transaction) and then asks the group coordinator what happened, rather
than guessing.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from streamkit.errors import KafkaOperationError
from streamkit.records import TP
from streamkit.runtime import failpoints, instance

__all__ = ["Transactions", "transactional_id"]

_TIMEOUT = 30.0
_COMMIT_TRIES = 3


def transactional_id(group: str, worker_id: str) -> str:
    """Stable across restarts of the same worker of the same instance (so zombies are
    fenced), distinct between instances (see :mod:`streamkit.runtime.instance`)."""
    return f"{group}-{instance.current()}-{worker_id}"


class Transactions:
    """Begins, commits or aborts a worker's transactions, re-creating its producer when it
    must."""

    def __init__(
        self,
        consumer: Consumer,
        make_producer: Callable[[], Producer],
        log: logging.Logger,
        denied: str = "not authorized to use its transactional id",
    ) -> None:
        self.consumer = consumer
        self.make_producer = make_producer
        self.log = log
        self.producer = make_producer()
        try:
            self.producer.init_transactions(_TIMEOUT)
        except KafkaException as exc:  # anything else: a crash, the supervisor restarts it
            if exc.args[0].code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
                raise KafkaOperationError(denied) from None
            raise

    def begin(self) -> None:
        """Open the transaction of a batch."""
        self.producer.begin_transaction()

    def abort(self) -> None:
        """Abort the open transaction (re-creating the producer if even that fails)."""
        try:
            self.producer.abort_transaction(_TIMEOUT)
        except KafkaException as exc:
            self.log.warning("abort failed (%s); re-creating the producer", exc.args[0].str())
            self._recreate()

    def commit(self, offsets: Mapping[TP, int]) -> bool:
        """Commit the batch with its input ``offsets``; False when it was aborted."""
        parts = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        try:
            if parts:
                self.producer.send_offsets_to_transaction(
                    parts, self.consumer.consumer_group_metadata(), _TIMEOUT
                )
        except KafkaException as exc:
            return self._failed(exc.args[0], "sending offsets", offsets)
        if failpoints.ARMED:
            failpoints.reached("txn-commit")
        for attempt in range(1, _COMMIT_TRIES + 1):
            try:
                self.producer.commit_transaction(_TIMEOUT)
                return True
            except KafkaException as exc:
                error = exc.args[0]
                if error.retriable() and attempt < _COMMIT_TRIES:
                    self.log.warning("commit retried: %s", error.str())
                    continue
                return self._failed(error, "committing", offsets)
        return False

    def _failed(self, error: Any, what: str, offsets: Mapping[TP, int]) -> bool:
        if error.txn_requires_abort():
            self.log.warning("%s the transaction failed (%s); aborting", what, error.str())
            self.abort()
            return False
        self.log.warning(
            "%s the transaction had no clear outcome (%s); re-creating the producer",
            what,
            error.str(),
        )
        self._recreate()
        return self._landed(offsets)

    def _recreate(self) -> None:
        with contextlib.suppress(KafkaException):
            self.producer.flush(0)
        self.producer = self.make_producer()
        self.producer.init_transactions(_TIMEOUT)

    def _landed(self, offsets: Mapping[TP, int]) -> bool:
        """Whether the group's committed offsets are the batch's (the commit went through)."""
        if not offsets:
            return False
        parts = [TopicPartition(t, p) for t, p in offsets]
        committed = self.consumer.committed(parts, timeout=_TIMEOUT)
        landed = all(offsets[(tp.topic, tp.partition)] == tp.offset for tp in committed)
        self.log.warning("the ambiguous transaction %s", "committed" if landed else "was aborted")
        return landed
