"""Holding a partition never moves it forward past records still to be processed."""

import logging
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from streamkit import App
from streamkit.engines.kafka.engine import KafkaEngine
from streamkit.runtime.pipeline import Pipeline
from streamkit.settings import Settings
from streamkit.testing.plugin import TopicFactory
from tests.integration.runtime.conftest import wait_for


def test_a_second_hold_at_a_later_offset_keeps_the_earlier_position(
    kafka_bootstrap: str, kafka_config: dict[str, Any], topic_factory: TopicFactory
) -> None:
    topic = topic_factory()
    producer = Producer(kafka_config)
    for n in range(10):
        producer.produce(topic, str(n).encode())
    assert producer.flush(10) == 0
    app = App("hold")
    app.topic(topic)

    @app.processor(input=topic)
    def nothing(event: Any) -> None:
        return None

    pipeline = Pipeline(app, Settings(bootstrap_servers=kafka_bootstrap))
    engine = KafkaEngine(
        pipeline, logging.getLogger("test"), batch_size=10, max_in_flight=10, state_dir=Path()
    )
    engine.consumer = Consumer({**kafka_config, "group.id": "hold", "enable.auto.commit": False})
    engine.consumer.assign([TopicPartition(topic, 0, 0)])
    task = engine.open_task((topic, 0))
    seen: list[int] = []
    try:
        wait_for(
            lambda: bool(seen.extend(m.offset() for m in engine.next_batch(0.5)) or seen),
            30,
            "the first records",
        )
        # Two failed deliveries of one partition: offset 3 reported first, then 7.
        task.hold_at(3, 0.2)
        task.hold_at(7, 0.2)
        assert task.hold is not None
        assert task.hold.offset == 3
        deadline = time.monotonic() + 5
        while task.hold is not None and time.monotonic() < deadline:
            engine.wake()
            time.sleep(0.05)
        assert task.hold is None
        assert engine.blocked_partitions == 0
        again: list[int] = []
        wait_for(
            lambda: bool(again.extend(m.offset() for m in engine.next_batch(0.5)) or again),
            30,
            "the records after the hold",
        )
        assert again[0] == 3  # not 7: offsets 3-6 are processed again
    finally:
        engine.consumer.close()
