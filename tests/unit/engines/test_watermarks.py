"""A partition's watermarks are asked again while its leadership moves (a node of the
cluster died), and a real error still ends the read with the partition named."""

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from streamkit.engines.kafka.clients import watermarks
from streamkit.errors import KafkaOperationError


class Flaky:
    def __init__(self, errors: list[int]) -> None:
        self.errors = errors
        self.calls = 0

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float) -> tuple[int, int]:
        self.calls += 1
        if self.errors:
            raise KafkaException(KafkaError(self.errors.pop(0)))
        return (3, 42)


def test_a_moving_leader_is_waited_for() -> None:
    consumer = Flaky([KafkaError._UNKNOWN_PARTITION, KafkaError.NOT_LEADER_FOR_PARTITION])
    assert watermarks(consumer, "t", 0) == (3, 42)  # type: ignore[arg-type]
    assert consumer.calls == 3


def test_another_error_names_the_partition_at_once() -> None:
    consumer = Flaky([KafkaError.TOPIC_AUTHORIZATION_FAILED])
    with pytest.raises(KafkaOperationError, match=r"reading the offsets of t\[5\] failed"):
        watermarks(consumer, "t", 5)  # type: ignore[arg-type]
    assert consumer.calls == 1


def test_a_leader_that_never_comes_back_ends_the_wait() -> None:
    consumer = Flaky([KafkaError.LEADER_NOT_AVAILABLE] * 100)
    with pytest.raises(KafkaOperationError, match="Broker: Leader not available"):
        watermarks(consumer, "t", 0, deadline=0.6)  # type: ignore[arg-type]
