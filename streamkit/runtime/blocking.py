"""Holding a partition back: pause it, rewind it to a record, resume it when due.

Blocking retries, records of a retry topic that are not yet due, and records whose
dead-letter write failed all do the same thing: the partition is paused and its position
set back to the record, so nothing after it is processed or committed; the consumer keeps
polling (the member stays in the group) and other partitions keep flowing. When the delay
is over the partition resumes and the record is fetched again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, TopicPartition

from streamkit.errors import KafkaOperationError

__all__ = ["Backoff", "PartitionBlocker"]

TopicPartitionKey = tuple[str, int]


@dataclass
class Backoff:
    """Growing waits for an infrastructure problem (1 s, 2 s, 4 s ... up to 30 s)."""

    initial: float = 1.0
    maximum: float = 30.0
    current: float = 0.0

    def next(self) -> float:
        """The next wait, and grow."""
        self.current = min(self.maximum, self.current * 2 if self.current else self.initial)
        return self.current


class PartitionBlocker:
    """Paused partitions and when each resumes."""

    def __init__(self, consumer: Consumer, log: logging.Logger) -> None:
        self.consumer = consumer
        self.log = log
        self.until: dict[TopicPartitionKey, float] = {}
        self.held_at: dict[TopicPartitionKey, int] = {}
        self.backoffs: dict[TopicPartitionKey, Backoff] = {}

    def __contains__(self, tp: object) -> bool:
        return tp in self.until

    def __len__(self) -> int:
        return len(self.until)

    def block(self, tp: TopicPartitionKey, offset: int, delay: float) -> None:
        """Pause ``tp`` and set its position back to ``offset`` for ``delay`` seconds.

        A partition already held at an earlier offset stays there: a hold never moves a
        partition forward past records that must be processed again. (When several
        deliveries of one partition fail together, each failure asks for a hold at its
        own record, the earliest first.)
        """
        offset = min(offset, self.held_at.get(tp, offset))
        partition = TopicPartition(tp[0], tp[1], offset)
        try:
            self.consumer.pause([partition])
            self.consumer.seek(partition)
        except KafkaException as exc:
            raise KafkaOperationError(
                f"cannot hold {tp[0]}[{tp[1]}] at offset {offset}: {exc.args[0].str()}"
            ) from exc
        self.until[tp] = time.monotonic() + delay
        self.held_at[tp] = offset

    def backoff(self, tp: TopicPartitionKey) -> float:
        """The next growing wait for ``tp`` (for repeated infrastructure failures)."""
        return self.backoffs.setdefault(tp, Backoff()).next()

    def succeeded(self, tp: TopicPartitionKey) -> None:
        """``tp`` made progress: its next infrastructure wait starts small again."""
        self.backoffs.pop(tp, None)

    def wake(self) -> None:
        """Resume the partitions whose delay is over."""
        if not self.until:
            return
        now = time.monotonic()
        due = [tp for tp, until in self.until.items() if until <= now]
        if not due:
            return
        for tp in due:
            del self.until[tp]
            self.held_at.pop(tp, None)
        try:
            self.consumer.resume([TopicPartition(t, p) for t, p in due])
        except KafkaException as exc:  # revoked in the meantime: nothing to resume
            self.log.debug("resume of %s skipped: %s", due, exc.args[0].str())

    def forget(self, tps: list[TopicPartitionKey]) -> None:
        """Drop revoked or lost partitions, resuming the held ones, so that a hold never
        outlives the assignment it was made in (defensive: librdkafka 2.x was seen to clear
        a pause on unassign, but nothing here relies on that)."""
        held = [tp for tp in tps if tp in self.until]
        for tp in tps:
            self.until.pop(tp, None)
            self.held_at.pop(tp, None)
            self.backoffs.pop(tp, None)
        if held:
            try:
                self.consumer.resume([TopicPartition(t, p) for t, p in held])
            except KafkaException as exc:
                self.log.debug("resume of %s skipped: %s", held, exc.args[0].str())
