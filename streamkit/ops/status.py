"""What a consumer group is doing: members, their partitions, lag and progress rates."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from streamkit.app import App
from streamkit.engines.kafka.offsets import offsets_for
from streamkit.errors import KafkaOperationError
from streamkit.topology import Topology

__all__ = ["GroupStatus", "PartitionStatus", "group_status", "with_rates"]


@dataclass(frozen=True)
class PartitionStatus:
    """One input partition: who owns it, where the group is, how far behind."""

    topic: str
    partition: int
    member: str
    committed: int | None
    end: int
    rate: float | None = None

    @property
    def lag(self) -> int:
        """Records between the committed position and the end of the partition."""
        return max(0, self.end - (self.committed or 0))


@dataclass(frozen=True)
class GroupStatus:
    """A consumer group at one moment."""

    group: str
    state: str
    members: dict[str, list[tuple[str, int]]]
    partitions: list[PartitionStatus]
    taken_at: float = field(default_factory=time.monotonic)

    @property
    def total_lag(self) -> int:
        """Lag summed over every partition."""
        return sum(p.lag for p in self.partitions)


def group_status(app: App, config: Mapping[str, Any], timeout: float = 10.0) -> GroupStatus:
    """Members, assignment, committed offsets and ends of ``app``'s input partitions."""
    admin = AdminClient(dict(config))
    group = app.group_id
    try:
        (described,) = admin.describe_consumer_groups([group], request_timeout=timeout).values()
        description = described.result(timeout=timeout)
        members: dict[str, list[tuple[str, int]]] = {}
        owner: dict[tuple[str, int], str] = {}
        for member in description.members:
            name = f"{member.client_id}@{member.host.lstrip('/')}"
            parts = sorted((tp.topic, tp.partition) for tp in member.assignment.topic_partitions)
            members[name] = parts
            for tp in parts:
                owner[tp] = name
        metadata = admin.list_topics(timeout=timeout)
        inputs = [
            TopicPartition(topic, p)
            for topic in Topology(app).consumed()
            if topic in metadata.topics
            for p in sorted(metadata.topics[topic].partitions)
        ]
        request = [ConsumerGroupTopicPartitions(group, inputs)]
        (offsets,) = admin.list_consumer_group_offsets(request, request_timeout=timeout).values()
        committed = {
            (tp.topic, tp.partition): (tp.offset if tp.offset >= 0 else None)
            for tp in offsets.result(timeout=timeout).topic_partitions
        }
        ends = offsets_for(admin, [(tp.topic, tp.partition) for tp in inputs], "latest")
    except KafkaException as exc:
        raise KafkaOperationError(f"cannot describe group {group}: {exc.args[0].str()}") from exc
    partitions = [
        PartitionStatus(t, p, owner.get((t, p), "-"), committed.get((t, p)), ends.get((t, p), 0))
        for t, p in sorted(ends)
    ]
    return GroupStatus(group, str(description.state).rpartition(".")[2], members, partitions)


def with_rates(now: GroupStatus, before: GroupStatus | None) -> GroupStatus:
    """``now`` with each partition's committed records per second since ``before``."""
    if before is None:
        return now
    elapsed = max(1e-6, now.taken_at - before.taken_at)
    previous = {(p.topic, p.partition): p.committed for p in before.partitions}
    rated = []
    for p in now.partitions:
        then = previous.get((p.topic, p.partition))
        rate = None
        if then is not None and p.committed is not None:
            rate = max(0.0, (p.committed - then) / elapsed)
        rated.append(PartitionStatus(p.topic, p.partition, p.member, p.committed, p.end, rate))
    return GroupStatus(now.group, now.state, now.members, rated, now.taken_at)
