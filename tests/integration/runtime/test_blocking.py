"""Holding a partition never moves it forward past records still to be processed."""

import logging
import time
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from streamkit.runtime.blocking import PartitionBlocker
from streamkit.testing.plugin import TopicFactory
from tests.integration.runtime.conftest import wait_for


def test_a_second_hold_at_a_later_offset_keeps_the_earlier_position(
    kafka_config: dict[str, Any], topic_factory: TopicFactory
) -> None:
    topic = topic_factory()
    producer = Producer(kafka_config)
    for n in range(10):
        producer.produce(topic, str(n).encode())
    assert producer.flush(10) == 0
    consumer = Consumer({**kafka_config, "group.id": "hold", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    seen: list[int] = []
    try:
        wait_for(lambda: bool(seen.extend(m.offset() for m in consumer.consume(10, 0.5)) or seen),
                 30, "the first records")  # fmt: skip
        blocker = PartitionBlocker(consumer, logging.getLogger("test"))
        # Two failed deliveries of one partition: offset 3 reported first, then 7.
        blocker.block((topic, 0), 3, 0.2)
        blocker.block((topic, 0), 7, 0.2)
        assert blocker.held_at[(topic, 0)] == 3
        deadline = time.monotonic() + 5
        while (topic, 0) in blocker and time.monotonic() < deadline:
            blocker.wake()
            time.sleep(0.05)
        assert (topic, 0) not in blocker
        again: list[int] = []
        wait_for(lambda: bool(again.extend(m.offset() for m in consumer.consume(10, 0.5)) or again),
                 30, "the records after the hold")  # fmt: skip
        assert again[0] == 3  # not 7: offsets 3-6 are processed again
    finally:
        consumer.close()
