"""The three engines settle records through the same per-partition tasks: the same records
give the same outputs, projections and dead letters in memory (TestDriver), on Kafka (the
worker) and in a shadow replay of the live topic, partition by partition, in order."""

import uuid
from collections import defaultdict
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition

from streamkit import App, Dedupe, Emit, Settings
from streamkit.ops.admin import TopicSpec, admin_client, create_topics, delete_topics
from streamkit.ops.replay import Bound, Redirect, shadow_replay
from streamkit.testing import TestDriver
from streamkit.topology import Topology
from tests.integration.helpers import committed_offsets, read_all, start_worker
from tests.integration.runtime.conftest import wait_for

PARTITIONS = 3


def _app(tag: str) -> App:
    app = App(f"agree-{tag}")
    orders = app.topic(f"orders-{tag}", partitions=PARTITIONS, keyed_by="customer")
    accepted = app.topic(f"accepted-{tag}", partitions=PARTITIONS)
    rejected = app.topic(f"rejected-{tag}", partitions=PARTITIONS)
    totals = app.topic(f"totals-{tag}", partitions=PARTITIONS)
    audit = app.topic(f"audit-{tag}", partitions=PARTITIONS)

    @app.processor(input=orders, output=accepted, outputs=[rejected])
    def check(order: dict[str, Any]) -> Any:
        if order["amount"] < 0:
            raise ValueError("negative amount")
        if order["amount"] == 0:
            return Emit(rejected.name, {"id": order["id"], "why": "empty"})
        return [order, Emit(rejected.name, {"id": order["id"], "why": "copy"})]

    @app.aggregate(input=orders, store="totals", key="customer", output=totals)
    def total(state: dict[str, Any] | None, order: dict[str, Any]) -> dict[str, Any]:
        state = state or {"n": 0, "sum": 0}
        return {"n": state["n"] + 1, "sum": state["sum"] + order["amount"]}

    @app.processor(input=orders, output=audit, dedupe=Dedupe(field="id"))
    def once(order: dict[str, Any]) -> dict[str, Any]:
        return {"id": order["id"]}

    return app


def _records() -> list[tuple[bytes, bytes]]:
    records = []
    for n in range(60):
        customer = f"c{n % 7}"
        order = {"id": f"o{n % 50}", "customer": customer, "amount": (n % 9) - 1}
        records.append((customer.encode(), orjson.dumps(order)))
    records.append((b"c1", b"not json"))  # undecodable: one dead letter
    mis_keyed = {"id": "x", "customer": "c2", "amount": 5}
    records.append((b"c3", orjson.dumps(mis_keyed)))  # keyed by another customer
    return records


def _by_partition(rows: list[tuple[int, Any, Any]]) -> dict[int, list[tuple[Any, Any]]]:
    found: dict[int, list[tuple[Any, Any]]] = defaultdict(list)
    for partition, key, value in rows:
        found[partition].append((key, value))
    return dict(found)


def _letters(rows: list[tuple[int, Any, dict[str, Any]]]) -> list[tuple[Any, ...]]:
    return sorted(
        (h["__streamkit.error.partition"], h["__streamkit.error.offset"],
         h["__streamkit.error.processor"], h["__streamkit.error.exception.class.name"])
        for _, _, h in rows
    )  # fmt: skip


def test_driver_worker_and_shadow_replay_give_identical_results(
    kafka_bootstrap: str, kafka_config: dict[str, Any]
) -> None:
    tag = uuid.uuid4().hex[:8]
    app = _app(tag)
    topology = Topology(app)
    source = f"orders-{tag}"
    outputs = [f"accepted-{tag}", f"rejected-{tag}", f"totals-{tag}", f"audit-{tag}"]
    dlq = topology.dlq(source)

    driver = TestDriver(app)
    for key, value in _records():
        driver.engine.append(source, key, value)
    in_memory = {
        t: _by_partition([(r.partition(), r.key(), r.value()) for r in driver.engine.records(t)])
        for t in outputs
    }
    memory_letters = _letters(
        [(0, None, {k: (v or b"").decode() for k, v in r.headers()})
         for r in driver.engine.records(dlq)]
    )  # fmt: skip
    assert memory_letters, "the records include failures"
    assert all(in_memory[t] for t in outputs), "every output topic gets records"

    admin = admin_client(kafka_config)
    created = [TopicSpec(t.name, t.partitions, 1, t.config) for t in topology.topics().values()]
    create_topics(admin, created)
    shadows = [f"{t}.shadow" for t in [*outputs, dlq, topology.parked(source)]]
    try:
        producer = Producer({**kafka_config, "enable.idempotence": True})
        for key, value in _records():
            producer.produce(source, value, key)
        assert producer.flush(30) == 0
        worker, thread = start_worker(app, kafka_bootstrap)
        try:
            ends = dict(enumerate(_ends(kafka_config, source)))
            wait_for(
                lambda: committed_offsets(kafka_config, app.group_id, source, PARTITIONS) == ends,
                90, "the worker to commit every input",
            )  # fmt: skip
        finally:
            worker.request_stop()
            thread.join(timeout=60)
        summary = shadow_replay(
            app, Settings(bootstrap_servers=kafka_bootstrap), Bound("offset", 0), None,
            Redirect(suffix=".shadow"),
        )  # fmt: skip
        assert summary.read == len(_records())

        def topic_rows(name: str) -> dict[int, list[tuple[Any, Any]]]:
            return _by_partition([(m.partition(), m.key(), m.value())
                                  for m in read_all(kafka_config, name)])  # fmt: skip

        def letters(name: str) -> list[tuple[Any, ...]]:
            return _letters([(0, None, {k: (v or b"").decode() for k, v in m.headers()})
                             for m in read_all(kafka_config, name)])  # fmt: skip

        for name in outputs:
            assert topic_rows(name) == in_memory[name], f"worker vs TestDriver: {name}"
            assert topic_rows(f"{name}.shadow") == in_memory[name], f"shadow vs TestDriver: {name}"
        assert letters(dlq) == memory_letters
        assert letters(f"{dlq}.shadow") == memory_letters
        classes = {letter[3].rpartition(".")[2] for letter in memory_letters}
        assert classes == {"ValueError", "SerializationError", "KeyMismatchError"}
    finally:
        delete_topics(admin, [*(t.name for t in created), *shadows])


def _ends(config: dict[str, Any], topic: str) -> list[int]:
    consumer = Consumer({**config, "group.id": "ends"})
    try:
        return [
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(PARTITIONS)
        ]
    finally:
        consumer.close()
