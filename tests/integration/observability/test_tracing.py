"""One event's path through two apps is one trace (in-memory span exporter)."""

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from streamkit import App
from streamkit.engines.kafka import KafkaWorker, WorkerOptions
from streamkit.observability.tracing import TracingMiddleware
from streamkit.ops.admin import TopicSpec, admin_client, create_topics, delete_topics
from streamkit.settings import Settings
from streamkit.topology import Topology
from tests.integration.runtime.conftest import wait_for

ROOT_TRACE = "0af7651916cd43dd8448eb211c80319c"
ROOT_SPAN = "b7ad6b7169203331"


def _traceparent(headers: list[tuple[str, bytes]] | None) -> str:
    values = [v.decode() for k, v in headers or [] if k == "traceparent"]
    return values[-1] if values else ""


def test_trace_context_flows_through_two_apps_and_into_dead_letters(
    kafka_bootstrap: str,
    kafka_config: dict[str, Any],
    topic_factory: Callable[..., str],
) -> None:
    first, second, third = (topic_factory(prefix=p) for p in ("tr-a", "tr-b", "tr-c"))
    upstream = App(f"{first}-up", dead_letters=False)
    upstream.topic(first)
    upstream.topic(second)

    @upstream.processor(input=first, output=second)
    def forward(event: dict[str, Any]) -> dict[str, Any]:
        return event

    downstream = App(f"{first}-down")
    downstream.topic(second)
    downstream.topic(third)

    @downstream.processor(input=second, output=third)
    def finish(event: dict[str, Any]) -> dict[str, Any]:
        if event.get("poison"):
            raise ValueError("poisoned")
        return {**event, "done": True}

    dlq = Topology(downstream).dlq(second)
    admin = admin_client(kafka_config)
    parked = f"{downstream.name}-{second}-parked"
    create_topics(admin, [TopicSpec(dlq), TopicSpec(parked)])
    try:
        _run_and_check(
            kafka_bootstrap, kafka_config, upstream, downstream, first, second, third, dlq
        )
    finally:
        delete_topics(admin, [dlq, parked])


def _first_record(config: dict[str, Any], topic: str) -> Any:
    reader = Consumer({**config, "group.id": f"trace-{topic}"})
    reader.assign([TopicPartition(topic, 0, 0)])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            msg = reader.poll(0.5)
            if msg is not None and msg.error() is None:
                return msg
    finally:
        reader.close()
    pytest.fail(f"nothing in {topic}")


def _run_and_check(
    kafka_bootstrap: str,
    kafka_config: dict[str, Any],
    upstream: App,
    downstream: App,
    first: str,
    second: str,
    third: str,
    dlq: str,
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = Settings(bootstrap_servers=kafka_bootstrap)
    workers = [
        KafkaWorker(
            app,
            settings=settings,
            options=WorkerOptions(worker_id=app.name[-4:], commit_interval=0.2),
            middleware=[TracingMiddleware(provider)],
        )
        for app in (upstream, downstream)
    ]
    threads = [threading.Thread(target=w.run, daemon=True) for w in workers]
    try:
        for thread in threads:
            thread.start()
        producer = Producer(kafka_config)
        parent = f"00-{ROOT_TRACE}-{ROOT_SPAN}-01"
        producer.produce(first, b'{"n": 1}', b"k1", headers=[("traceparent", parent.encode())])
        producer.produce(first, b'{"n": 2, "poison": true}', b"k2")
        assert producer.flush(10) == 0

        def spans() -> list[Any]:
            return list(exporter.get_finished_spans())

        wait_for(lambda: len(spans()) >= 4, 60, "4 spans (2 records x 2 apps)")
    finally:
        for worker in workers:
            worker.request_stop()
        for thread in threads:
            thread.join(timeout=60)

    by_name: dict[str, list[Any]] = {}
    for span in spans():
        by_name.setdefault(span.name, []).append(span)
    (up_traced,) = [
        s
        for s in by_name[f"process {first}"]
        if s.parent and s.parent.span_id == int(ROOT_SPAN, 16)
    ]
    assert f"{up_traced.context.trace_id:032x}" == ROOT_TRACE
    attributes = dict(up_traced.attributes or {})
    assert attributes["messaging.system"] == "kafka"
    assert attributes["messaging.destination.name"] == first
    assert attributes["messaging.destination.partition.id"] == "0"
    assert attributes["messaging.consumer.group.name"] == upstream.group_id
    assert attributes["messaging.kafka.offset"] == 0
    assert attributes["messaging.kafka.message.key"] == "k1"
    down = [
        s
        for s in by_name[f"process {second}"]
        if s.parent and s.parent.span_id == up_traced.context.span_id
    ]
    assert len(down) == 1
    assert f"{down[0].context.trace_id:032x}" == ROOT_TRACE  # one trace across both apps
    # the output of the second app and the dead letter carry their span's context
    got = {topic: _first_record(kafka_config, topic) for topic in (third, dlq)}
    out_parent = _traceparent(got[third].headers())
    assert out_parent == f"00-{ROOT_TRACE}-{down[0].context.span_id:016x}-01"
    poisoned = [s for s in by_name[f"process {second}"] if s is not down[0]]
    assert len(poisoned) == 1
    assert not poisoned[0].status.is_ok
    dlq_parent = _traceparent(got[dlq].headers())
    assert dlq_parent.split("-")[2] == f"{poisoned[0].context.span_id:016x}"
