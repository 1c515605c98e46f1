"""An output carries its input's timestamp on a real broker, on the fast path (a plain
one-output processor) and on the general one (a processor taking its context)."""

import uuid
from typing import Any

import orjson
from confluent_kafka import Producer

from streamkit import App, Context
from streamkit.ops.client import AppClient
from streamkit.settings import Settings
from streamkit.testing.plugin import TopicFactory
from tests.integration.helpers import read_all, start_worker
from tests.integration.runtime.conftest import wait_for

BASE = 1_600_000_000_000  # 2020-09-13: far from the wall clock a produce would stamp
KEEP = {"retention.ms": "-1"}
"""Time-based retention counts from record timestamps: with the broker's 7 days, records
stamped 2020 go at its next retention check (every 10 s on the test broker), inputs or
outputs, sometimes before the test has read them."""


def test_outputs_carry_their_inputs_timestamps(
    kafka_bootstrap: str, kafka_config: dict[str, Any], topic_factory: TopicFactory
) -> None:
    fast_in, general_in, out = (
        topic_factory(2, KEEP, prefix=p) for p in ("fast", "general", "out")
    )
    app = App(f"stamps-{uuid.uuid4().hex[:6]}", dead_letters=False)
    for topic in (fast_in, general_in, out):
        app.topic(topic, partitions=2, config=KEEP)

    @app.processor(input=fast_in, output=out)
    def fast(event: dict[str, Any]) -> dict[str, Any]:
        return {"n": event["n"], "path": "fast"}

    @app.processor(input=general_in, output=out)
    def general(event: dict[str, Any], ctx: Context) -> dict[str, Any]:
        return {"n": event["n"], "path": "general"}

    AppClient(app, Settings(bootstrap_servers=kafka_bootstrap)).create_topics()
    producer = Producer(kafka_config)
    for n in range(50):
        for topic in (fast_in, general_in):
            producer.produce(topic, orjson.dumps({"n": n}), str(n).encode(), timestamp=BASE + n)
    assert producer.flush(30) == 0
    worker, thread = start_worker(app, kafka_bootstrap)
    try:
        wait_for(lambda: len(read_all(kafka_config, out, stall=5)) >= 100, 60, "100 outputs")
    finally:
        worker.request_stop()
        thread.join(60)
    stamps = {}
    for msg in read_all(kafka_config, out):
        event = orjson.loads(msg.value() or b"")
        stamps[(event["path"], event["n"])] = msg.timestamp()[1]
    assert stamps == {(path, n): BASE + n for path in ("fast", "general") for n in range(50)}
