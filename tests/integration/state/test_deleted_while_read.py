"""Records deleted while a bounded read is under way (retention, or a records deletion):
the read goes on from the log's new start, it does not jump to the end."""

from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from streamkit import App
from streamkit.engines.kafka import ChangelogReader, read_until
from streamkit.engines.kafka.clients import BOUNDED_READ
from streamkit.errors import KafkaOperationError
from streamkit.settings import Settings
from streamkit.topology import Topology


def _fill(config: dict[str, Any], topic: str, count: int) -> None:
    producer = Producer({**config, "linger.ms": 5})
    for n in range(count):
        producer.produce(topic, str(n).encode(), b"k", partition=0)
    assert producer.flush(30) == 0


def _delete_before(config: dict[str, Any], topic: str, offset: int) -> None:
    admin = AdminClient(config)
    (future,) = admin.delete_records([TopicPartition(topic, 0, offset)]).values()
    assert future.result(timeout=30).low_watermark == offset


def _reader(config: dict[str, Any], **extra: Any) -> Consumer:
    return Consumer(
        {**config, "group.id": "deleted-while-read", "enable.auto.commit": False, **extra}
    )


def test_read_until_reads_on_from_the_new_log_start(
    kafka_config: dict[str, Any], topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory(partitions=1, prefix="deleted")
    _fill(kafka_config, topic, 200)
    ranges = {(topic, 0): (0, 200)}  # the extent as a reader saw it before the deletion
    _delete_before(kafka_config, topic, 120)
    consumer = _reader(kafka_config, **BOUNDED_READ)
    try:
        offsets = [m.offset() for m in read_until(consumer, ranges, stall=30)]
    finally:
        consumer.close()
    assert offsets == list(range(120, 200))
    # The control: librdkafka's default reset jumps to the end, past the records left (in a
    # partition still written to, the reader would then read on from there).
    consumer = _reader(kafka_config)
    try:
        with pytest.raises(KafkaOperationError, match="stalled before its end"):
            list(read_until(consumer, ranges, stall=3))
    finally:
        consumer.close()


def test_a_restore_reads_on_from_the_new_log_start(
    kafka_config: dict[str, Any], kafka_bootstrap: str, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory(partitions=1, prefix="deleted-changelog")
    _fill(kafka_config, topic, 200)
    settings = Settings(bootstrap_servers=kafka_bootstrap)
    reader = ChangelogReader(settings, Topology(App("deleted-restore")))
    try:
        end, records = reader(topic, 0, 0)  # the extent is known; the records are read lazily
        _delete_before(kafka_config, topic, 150)
        offsets = [offset for _, _, offset in records]
    finally:
        reader.close()
    assert end == 200
    assert offsets == list(range(150, 200))
