"""Patterns on a real broker: a header pattern skips records before decoding (bytes that
would not decode are never dead-lettered), an event pattern in front of a concurrent
processor, and the counts of what they kept from each processor."""

import threading
import uuid
from typing import Any

import orjson
from confluent_kafka import Producer

from streamkit import App
from streamkit.engines.kafka import KafkaWorker, WorkerOptions
from streamkit.ops.client import AppClient
from streamkit.settings import Settings
from streamkit.testing.plugin import TopicFactory
from tests.integration.helpers import committed_offsets, read_all
from tests.integration.runtime.conftest import wait_for


def test_header_and_event_patterns_keep_records_from_processors(
    kafka_bootstrap: str, kafka_config: dict[str, Any], topic_factory: TopicFactory
) -> None:
    typed, plain = topic_factory(2, prefix="typed"), topic_factory(2, prefix="plain")
    out = topic_factory(2, prefix="out")
    app = App(f"where-{uuid.uuid4().hex[:6]}", dead_letters=True)
    for topic in (typed, plain, out):
        app.topic(topic, partitions=2)

    @app.processor(input=typed, output=out, where_headers={"type": ["wanted"]})
    def by_header(event: dict[str, Any]) -> dict[str, Any]:
        return {"from": "header", "n": event["n"]}

    @app.processor(input=plain, output=out, concurrency=8, where={"n": [{"numeric": [">=", 90]}]})
    async def by_event(event: dict[str, Any]) -> dict[str, Any]:
        return {"from": "event", "n": event["n"]}

    settings = Settings(bootstrap_servers=kafka_bootstrap)
    AppClient(app, settings).create_topics()
    producer = Producer(kafka_config)
    for n in range(100):
        wanted = n % 10 == 0
        value = orjson.dumps({"n": n}) if wanted else b"\xff not json"
        producer.produce(typed, value, b"k", headers=[("type", b"wanted" if wanted else b"x")])
        producer.produce(plain, orjson.dumps({"n": n}), str(n).encode())
    assert producer.flush(30) == 0
    worker = KafkaWorker(app, settings=settings, options=WorkerOptions(commit_interval=0.2))
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:

        def done() -> bool:
            ends = [committed_offsets(kafka_config, app.group_id, t, 2) for t in (typed, plain)]
            return all(sum(max(0, o) for o in end.values()) == 100 for end in ends)

        wait_for(done, 90, "both inputs committed")
        assert worker.unmatched == {"by_header": 90, "by_event": 90}
    finally:
        worker.request_stop()
        thread.join(60)
    outputs = [orjson.loads(m.value() or b"") for m in read_all(kafka_config, out)]
    assert sorted(o["n"] for o in outputs if o["from"] == "header") == list(range(0, 100, 10))
    assert sorted(o["n"] for o in outputs if o["from"] == "event") == list(range(90, 100))
    assert read_all(kafka_config, f"{app.name}-{typed}-dlq") == []  # never decoded
