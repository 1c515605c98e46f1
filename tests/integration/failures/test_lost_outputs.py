"""Outputs the broker refuses after the fact (asynchronous delivery failures).

Outputs are acknowledged per batch, so a failed delivery does not say which input it came
from. The worker rewinds the batch's partitions and processes them again with a delivery
report per record, which names each record whose output fails. Here the output topic's
own ``max.message.bytes`` (20 kB, well under the producer's 1 MB) refuses every output, so
every input must end up in the dead-letter topic, with nothing lost and nothing skipped.
"""

import os
import uuid
from typing import Any

import orjson
from confluent_kafka import Producer

from streamkit import App
from streamkit.failures.dead_letter import read_dead_letter
from streamkit.ops.admin import TopicSpec, admin_client, create_topics, delete_topics
from streamkit.records import message_headers
from streamkit.testing.plugin import TopicFactory
from streamkit.topology import Topology
from tests.integration.helpers import committed_offsets, read_all, start_worker
from tests.integration.runtime.conftest import wait_for

RECORDS = 40
PARTITIONS = 2


def test_outputs_refused_by_the_topic_are_found_per_record_and_dead_lettered(
    kafka_bootstrap: str, kafka_config: dict[str, Any], topic_factory: TopicFactory
) -> None:
    source = topic_factory(PARTITIONS)
    sink = topic_factory(PARTITIONS, {"max.message.bytes": "20000"})
    app = App(f"lost-{uuid.uuid4().hex[:6]}")
    app.topic(source)
    app.topic(sink)

    @app.processor(input=source, output=sink)
    def widen(event: dict[str, Any]) -> dict[str, Any]:
        # 40 kB of random hex: lz4 cannot shrink it under the topic's 20 kB limit.
        return {"n": event["n"], "pad": os.urandom(20_000).hex()}

    admin = admin_client(kafka_config)
    dlq, parked = Topology(app).dlq(source), Topology(app).parked(source)
    create_topics(admin, [TopicSpec(dlq, PARTITIONS, 1), TopicSpec(parked, PARTITIONS, 1)])
    producer = Producer(kafka_config)
    for n in range(RECORDS):
        producer.produce(source, orjson.dumps({"n": n}), str(n).encode(), partition=n % 2)
    assert producer.flush(10) == 0

    worker, thread = start_worker(app, kafka_bootstrap)
    ends = dict.fromkeys(range(PARTITIONS), RECORDS // PARTITIONS)

    def all_committed() -> bool:
        assert thread.is_alive(), "the worker stopped"
        return committed_offsets(kafka_config, app.group_id, source, PARTITIONS) == ends

    try:
        wait_for(all_committed, 90, "every input to be committed")
    finally:
        worker.request_stop()
        thread.join(timeout=60)
        try:
            letters = [
                read_dead_letter(
                    m.topic(), m.partition(), m.offset(), m.key(), m.value(), message_headers(m)
                )
                for m in read_all(kafka_config, dlq, stall=20)
            ]
            outputs = read_all(kafka_config, sink, stall=20)
        finally:
            delete_topics(admin, [dlq, parked])
    assert not thread.is_alive()
    # Every input is in the dead-letter topic (at least once), named by its own offset.
    dead = {(int(d.error["partition"]), int(d.error["offset"])) for d in letters}
    assert dead == {(n % 2, n // 2) for n in range(RECORDS)}
    assert {d.error_class for d in letters} == {"streamkit.errors.OutputTooLargeError"}
    assert outputs == []
    # The first pass acknowledged per batch and had to rewind to find the records.
    assert worker.counters.rewinds >= 1
    assert worker.counters.dead_letters >= RECORDS
