"""How far a consumer group is behind, read with no group membership.

The autoscaler asks this every few seconds, also while no worker runs (scale to zero), so
it must never join the group: it reads committed offsets and partition ends only.

The committed offsets come from a consumer of the group that never subscribes
(``committed()``), not from the admin API's ListConsumerGroupOffsets: librdkafka aborts
the whole process in the error path of coordinator-targeted admin requests when a
broker connection drops (``rd_kafka_enq_once_del_source_return: Assertion
'eonce->refcnt > 0'``, confluentinc/librdkafka #4605 and #3663, fix open as PR #5397),
and the supervisor that asks every few seconds must outlive a broker restart.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from streamkit.engines.kafka.offsets import offsets_for
from streamkit.errors import ConfigError, KafkaOperationError
from streamkit.records import TP
from streamkit.settings import Settings

__all__ = ["LagProbe", "PartitionLag"]


@dataclass(frozen=True)
class PartitionLag:
    """One partition of a group's input: its committed position, start and end.

    A partition the group never committed is consumed from its start (the workers'
    ``auto.offset.reset`` is ``earliest``), so its lag counts from there.
    """

    committed: int | None
    start: int
    end: int

    @property
    def lag(self) -> int:
        """Records between the group's position and the end of the partition."""
        position = self.committed if self.committed is not None else self.start
        return max(0, self.end - position)


class LagProbe:
    """Reads the lag of ``group`` on ``topics`` (those that exist) with one admin client
    (topics, partition ends) and one consumer that never joins the group (its commits)."""

    def __init__(self, settings: Settings, group: str, topics: Iterable[str]) -> None:
        self.group = group
        self.topics = list(topics)
        self._admin = AdminClient(settings.client_config(for_client="admin"))
        self._consumer = Consumer(
            settings.client_config(
                for_client="consumer",
                **{
                    "group.id": group,
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                },
            )
        )

    def close(self) -> None:
        """Leave nothing open (the consumer never joined, so nothing to leave)."""
        self._consumer.close()

    def sample(self, timeout: float = 10.0) -> dict[TP, PartitionLag]:
        """Every partition of the topics that exist, with its lag now.

        Raises:
            KafkaOperationError: the broker did not answer.
            ConfigError: a topic is missing (a worker could not start either).
        """
        try:
            metadata = self._admin.list_topics(timeout=timeout)
        except KafkaException as exc:
            raise KafkaOperationError(f"listing topics failed: {exc.args[0].str()}") from exc
        missing = [t for t in self.topics if t not in metadata.topics]
        if missing:
            raise ConfigError(
                f"topics of group {self.group} do not exist: {', '.join(sorted(missing))} "
                "(create them with `streamkit topics create MODULE`)"
            )
        parts: list[TP] = [
            (topic, p)
            for topic in self.topics
            if (info := metadata.topics.get(topic)) is not None and info.error is None
            for p in sorted(info.partitions)
        ]
        if not parts:
            return {}
        try:
            found = self._consumer.committed([TopicPartition(*tp) for tp in parts], timeout)
        except KafkaException as exc:
            raise KafkaOperationError(
                f"reading offsets of group {self.group}: {exc.args[0].str()}"
            ) from exc
        committed = {(f.topic, f.partition): f.offset if f.offset >= 0 else None for f in found}
        starts = offsets_for(self._admin, parts, "earliest")
        ends = offsets_for(self._admin, parts, "latest")
        return {tp: PartitionLag(committed.get(tp), starts[tp], ends[tp]) for tp in parts}
