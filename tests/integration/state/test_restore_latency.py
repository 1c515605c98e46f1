"""Restoring many small changelog partitions must not cost a fetch wait each (regression:
found by the chaos suite, where each partition's restore took about a second whatever
its size, so a restarted worker with six partitions sat idle for six seconds)."""

import time
from typing import Any

from confluent_kafka import Producer

from streamkit import App
from streamkit.engines.kafka import KafkaWorker
from streamkit.settings import Settings
from streamkit.testing.plugin import TopicFactory

PARTITIONS = 6
PER_PARTITION = 50


def test_small_partitions_restore_without_waiting(
    kafka_bootstrap: str, kafka_config: dict[str, Any], topic_factory: TopicFactory
) -> None:
    changelog = topic_factory(partitions=PARTITIONS)
    producer = Producer(kafka_config)
    for p in range(PARTITIONS):
        for n in range(PER_PARTITION):
            producer.produce(changelog, b'{"s": 1, "o": 0, "t": 0}', f"k{n}".encode(), partition=p)
    assert producer.flush(30) == 0
    app = App("restore-latency")
    app.topic(changelog, partitions=PARTITIONS)

    @app.aggregate(input=changelog, store="counts")
    def count(state: int | None, event: Any) -> int:
        return (state or 0) + 1

    worker = KafkaWorker(app, settings=Settings(bootstrap_servers=kafka_bootstrap))
    try:
        worker.restore(changelog, 0, 0)  # connect and warm up outside the timing
        started = time.monotonic()
        counts = [len(list(worker.restore(changelog, p, 0)[1])) for p in range(PARTITIONS)]
        took = time.monotonic() - started
    finally:
        worker.consumer.close()
        worker.restore.close()
    assert counts == [PER_PARTITION] * PARTITIONS
    # Each partition used to cost about one second (two 500 ms fetch waits).
    assert took < 0.4 * PARTITIONS, f"{PARTITIONS} small partitions took {took:.1f}s to restore"
