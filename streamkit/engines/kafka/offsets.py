"""Offsets of topics and groups through the admin API: ends, times, committed positions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._listoffsets import OffsetSpec

from streamkit.errors import KafkaOperationError
from streamkit.records import TP

__all__ = [
    "alter_committed",
    "committed_offsets",
    "group_members",
    "offsets_for",
    "partitions_of",
]


def _spec(kind: str, timestamp_ms: int = 0) -> OffsetSpec:
    # OffsetSpec's factories are untyped in confluent-kafka's stubs.
    spec: OffsetSpec
    if kind == "earliest":
        spec = OffsetSpec.earliest()  # type: ignore[no-untyped-call]
    elif kind == "latest":
        spec = OffsetSpec.latest()  # type: ignore[no-untyped-call]
    else:
        spec = OffsetSpec.for_timestamp(timestamp_ms)
    return spec


def partitions_of(admin: AdminClient, topics: Iterable[str], timeout: float = 10.0) -> list[TP]:
    """Every partition of ``topics``; an unknown topic is an error that names it."""
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise KafkaOperationError(f"listing topics failed: {exc.args[0].str()}") from exc
    found: list[TP] = []
    for topic in topics:
        info = metadata.topics.get(topic)
        if info is None or info.error is not None:
            raise KafkaOperationError(f"topic {topic} does not exist")
        found += [(topic, p) for p in sorted(info.partitions)]
    return found


def offsets_for(
    admin: AdminClient, partitions: Iterable[TP], kind: str, timestamp_ms: int = 0
) -> dict[TP, int]:
    """``earliest``, ``latest``, or (``timestamp``) the first offset at or after a time.

    For a time after the last record the answer is the partition's end.
    """
    parts = list(partitions)
    if not parts:
        return {}
    request = {TopicPartition(t, p): _spec(kind, timestamp_ms) for t, p in parts}
    try:
        futures = admin.list_offsets(request, request_timeout=15)
        found = {(tp.topic, tp.partition): f.result(timeout=20).offset for tp, f in futures.items()}
    except KafkaException as exc:
        raise KafkaOperationError(f"listing offsets failed: {exc.args[0].str()}") from exc
    if kind == "timestamp" and any(offset < 0 for offset in found.values()):
        ends = offsets_for(admin, [tp for tp, o in found.items() if o < 0], "latest")
        found.update(ends)
    return found


def committed_offsets(
    admin: AdminClient, group: str, partitions: Iterable[TP]
) -> dict[TP, int | None]:
    """The group's committed offsets (None where it has none)."""
    parts = [TopicPartition(t, p) for t, p in partitions]
    request = [ConsumerGroupTopicPartitions(group, parts)]
    try:
        (future,) = admin.list_consumer_group_offsets(request, request_timeout=15).values()
        result = future.result(timeout=20)
    except KafkaException as exc:
        raise KafkaOperationError(f"reading offsets of group {group}: {exc.args[0].str()}") from exc
    return {
        (tp.topic, tp.partition): (tp.offset if tp.offset >= 0 else None)
        for tp in result.topic_partitions
    }


def group_members(admin: AdminClient, group: str) -> tuple[str, list[str]]:
    """The group's state and its members as ``client-id@host``."""
    try:
        (future,) = admin.describe_consumer_groups([group], request_timeout=15).values()
        description = future.result(timeout=20)
    except KafkaException as exc:
        raise KafkaOperationError(f"describing group {group}: {exc.args[0].str()}") from exc
    state = str(description.state).rpartition(".")[2]
    members = [f"{m.client_id}@{m.host.lstrip('/')}" for m in description.members]
    return state, members


def alter_committed(admin: AdminClient, group: str, offsets: Mapping[TP, int]) -> None:
    """Set the group's committed offsets (the group must have no active member)."""
    parts = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
    request = [ConsumerGroupTopicPartitions(group, parts)]
    try:
        (future,) = admin.alter_consumer_group_offsets(request, request_timeout=15).values()
        result: Any = future.result(timeout=20)
    except KafkaException as exc:
        raise KafkaOperationError(
            f"moving offsets of group {group} failed: {exc.args[0].str()}"
        ) from exc
    for tp in result.topic_partitions:
        if tp.error is not None:
            raise KafkaOperationError(
                f"moving {tp.topic}[{tp.partition}] of group {group} failed: {tp.error.str()}"
            )
