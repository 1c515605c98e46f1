"""A partition's watermarks are asked again while its leadership moves (a node of the
cluster died), and a real error still ends the read with the partition named."""

from types import SimpleNamespace

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from streamkit.engines.kafka.clients import watermarks
from streamkit.errors import KafkaOperationError


class Flaky:
    """A consumer whose offset queries fail with ``errors`` first; its metadata names
    broker 1 as the leader once ``leader_after`` metadata requests were made."""

    def __init__(self, errors: list[int], leader_after: int = 0) -> None:
        self.errors = errors
        self.calls = 0
        self.metadata_requests = 0
        self.leader_after = leader_after
        self.forever = False

    def list_topics(self, topic: str, timeout: float) -> SimpleNamespace:
        self.metadata_requests += 1
        leader = 1 if self.metadata_requests > self.leader_after else 2  # 2: the dead one
        partitions = {p: SimpleNamespace(leader=leader) for p in range(8)}
        return SimpleNamespace(
            topics={topic: SimpleNamespace(partitions=partitions)}, brokers={1: "live"}
        )

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float) -> tuple[int, int]:
        self.calls += 1
        if self.errors:
            code = self.errors[0] if len(self.errors) == 1 and self.forever else self.errors.pop(0)
            raise KafkaException(KafkaError(code))
        return (3, 42)


def test_a_moving_leader_is_waited_for_and_asked_once_the_metadata_names_a_live_one() -> None:
    consumer = Flaky(
        [KafkaError._UNKNOWN_PARTITION, KafkaError.NOT_LEADER_FOR_PARTITION], leader_after=2
    )
    assert watermarks(consumer, "t", 0) == (3, 42)  # type: ignore[arg-type]
    assert consumer.calls == 3
    assert consumer.metadata_requests == 4  # twice the dead leader, then a live one twice


def test_another_error_names_the_partition_at_once() -> None:
    consumer = Flaky([KafkaError.TOPIC_AUTHORIZATION_FAILED])
    with pytest.raises(KafkaOperationError, match=r"reading the offsets of t\[5\] failed"):
        watermarks(consumer, "t", 5)  # type: ignore[arg-type]
    assert consumer.calls == 1


def test_a_leader_that_never_comes_back_ends_the_wait() -> None:
    consumer = Flaky([KafkaError.LEADER_NOT_AVAILABLE])
    consumer.forever = True
    with pytest.raises(KafkaOperationError, match="Broker: Leader not available"):
        watermarks(consumer, "t", 0, deadline=0.6)  # type: ignore[arg-type]
