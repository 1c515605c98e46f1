"""The three engines settle records through the same per-partition tasks: the same records
give the same outputs, projections and dead letters in memory (TestDriver), on Kafka (the
worker) and in a shadow replay of the live topic, partition by partition, in order; a
concurrent processor's (run beside each other on the worker, one at a time in memory and
in the replay) key by key, in order; a queue processor's (a share group's worker) as a
multiset."""

import threading
import uuid
from collections import defaultdict
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition

from streamkit import App, Context, Dedupe, Emit, Settings
from streamkit.engines.kafka.queue import QueueWorker
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

    enriched = app.topic(f"enriched-{tag}", partitions=PARTITIONS)

    @app.processor(
        input=accepted,
        output=enriched,
        concurrency=4,
        ordering="key",
        where={"amount": [{"numeric": [">", 2]}]},
        dedupe=Dedupe(field="ref"),  # a ref's records share a key: one lane, in order
    )
    def enrich(order: dict[str, Any], ctx: Context) -> dict[str, Any]:
        if order["amount"] == 7:
            raise ValueError("seven")
        return {"id": order["id"], "x": order["amount"] * 10, "offset": ctx.offset}

    return app


def _records() -> list[tuple[bytes, bytes]]:
    records = []
    for n in range(60):
        customer = f"c{n % 7}"
        ref = f"{customer}-{n % 21}"  # a ref's records share a customer
        order = {"id": f"o{n % 50}", "customer": customer, "amount": (n % 9) - 1, "ref": ref}
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


def _by_key(rows: list[tuple[int, Any, Any]]) -> dict[tuple[int, Any], list[Any]]:
    found: dict[tuple[int, Any], list[Any]] = defaultdict(list)
    for partition, key, value in rows:
        found[(partition, key)].append(value)
    return dict(found)


def _letters(rows: list[tuple[int, Any, dict[str, Any]]]) -> list[tuple[Any, ...]]:
    return sorted(
        (
            h["__streamkit.error.partition"],
            h["__streamkit.error.offset"],
            h["__streamkit.error.processor"],
            h["__streamkit.error.exception.class.name"],
        )
        for _, _, h in rows
    )


def test_driver_worker_and_shadow_replay_give_identical_results(
    kafka_bootstrap: str, kafka_config: dict[str, Any]
) -> None:
    tag = uuid.uuid4().hex[:8]
    app = _app(tag)
    topology = Topology(app)
    source = f"orders-{tag}"
    outputs = [f"accepted-{tag}", f"rejected-{tag}", f"totals-{tag}", f"audit-{tag}"]
    dlq = topology.dlq(source)
    concurrent, concurrent_dlq = f"enriched-{tag}", topology.dlq(f"accepted-{tag}")

    driver = TestDriver(app)
    for key, value in _records():
        driver.engine.append(source, key, value)
    in_memory = {
        t: _by_partition([(r.partition(), r.key(), r.value()) for r in driver.engine.records(t)])
        for t in outputs
    }
    memory_letters = _letters(
        [
            (0, None, {k: (v or b"").decode() for k, v in r.headers()})
            for r in driver.engine.records(dlq)
        ]
    )
    assert memory_letters, "the records include failures"
    assert all(in_memory[t] for t in outputs), "every output topic gets records"
    memory_enriched = _by_key(
        [(r.partition(), r.key(), r.value()) for r in driver.engine.records(concurrent)]
    )
    memory_concurrent_letters = _letters(
        [
            (0, None, {k: (v or b"").decode() for k, v in r.headers()})
            for r in driver.engine.records(concurrent_dlq)
        ]
    )
    assert memory_enriched, "the concurrent processor writes"
    assert memory_concurrent_letters, "and dead-letters"

    admin = admin_client(kafka_config)
    created = [TopicSpec(t.name, t.partitions, 1, t.config) for t in topology.topics().values()]
    create_topics(admin, created)
    internal = [dlq, topology.parked(source), concurrent_dlq, topology.parked(f"accepted-{tag}")]
    shadows = [f"{t}.shadow" for t in [*outputs, concurrent, *internal]]
    try:
        producer = Producer({**kafka_config, "enable.idempotence": True})
        for key, value in _records():
            producer.produce(source, value, key)
        assert producer.flush(30) == 0
        worker, thread = start_worker(app, kafka_bootstrap)
        try:
            for topic in (source, f"accepted-{tag}"):
                _wait_committed(kafka_config, app.group_id, topic)
        finally:
            worker.request_stop()
            thread.join(timeout=60)
        summary = shadow_replay(
            app,
            Settings(bootstrap_servers=kafka_bootstrap),
            Bound("offset", 0),
            None,
            Redirect(suffix=".shadow"),
        )
        accepted = sum(len(rows) for rows in in_memory[outputs[0]].values())
        assert summary.read == len(_records()) + accepted

        def topic_rows(name: str) -> dict[int, list[tuple[Any, Any]]]:
            return _by_partition(
                [(m.partition(), m.key(), m.value()) for m in read_all(kafka_config, name)]
            )

        def letters(name: str) -> list[tuple[Any, ...]]:
            return _letters(
                [
                    (0, None, {k: (v or b"").decode() for k, v in m.headers()})
                    for m in read_all(kafka_config, name)
                ]
            )

        for name in outputs:
            assert topic_rows(name) == in_memory[name], f"worker vs TestDriver: {name}"
            assert topic_rows(f"{name}.shadow") == in_memory[name], f"shadow vs TestDriver: {name}"
        assert letters(dlq) == memory_letters
        assert letters(f"{dlq}.shadow") == memory_letters

        def key_rows(name: str) -> dict[tuple[int, Any], list[Any]]:
            return _by_key(
                [(m.partition(), m.key(), m.value()) for m in read_all(kafka_config, name)]
            )

        assert key_rows(concurrent) == memory_enriched, "worker vs TestDriver: concurrent"
        assert key_rows(f"{concurrent}.shadow") == memory_enriched, "shadow: concurrent"
        assert letters(concurrent_dlq) == memory_concurrent_letters
        assert letters(f"{concurrent_dlq}.shadow") == memory_concurrent_letters
        classes = {letter[3].rpartition(".")[2] for letter in memory_letters}
        assert classes == {"ValueError", "SerializationError", "KeyMismatchError"}
    finally:
        delete_topics(admin, [*(t.name for t in created), *shadows])


def _wait_committed(config: dict[str, Any], group: str, topic: str) -> None:
    ends = dict(enumerate(_ends(config, topic)))
    wait_for(
        lambda: committed_offsets(config, group, topic, PARTITIONS) == ends,
        90,
        f"the worker to commit every record of {topic}",
    )


def _ends(config: dict[str, Any], topic: str) -> list[int]:
    consumer = Consumer({**config, "group.id": "ends"})
    try:
        return [
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(PARTITIONS)
        ]
    finally:
        consumer.close()


def _queue_app(tag: str) -> App:
    app = App(f"agreeq-{tag}")
    jobs = app.topic(f"jobs-{tag}", partitions=PARTITIONS)
    done = app.topic(f"done-{tag}", partitions=PARTITIONS)

    @app.processor(input=jobs, output=done, queue=True, retries=2, where={"kind": ["job"]})
    def work(job: dict[str, Any]) -> dict[str, Any] | None:
        if job["n"] % 10 == 3:
            raise ValueError("three")
        if job["n"] % 10 == 5:
            return None
        return {"n": job["n"], "x": job["n"] * 2}

    return app


def test_a_queue_worker_and_the_driver_give_the_same_outputs_and_dead_letters(
    kafka_bootstrap: str, kafka_config: dict[str, Any]
) -> None:
    # A share group's records settle by acknowledgement, a partition's by offsets: the
    # same walk over each outcome. Queues keep no order: compared as multisets.
    tag = uuid.uuid4().hex[:8]
    app = _queue_app(tag)
    topology = Topology(app)
    source, output = f"jobs-{tag}", f"done-{tag}"
    dlq = topology.dlq(source)
    records = [
        (f"k{n}".encode(), orjson.dumps({"n": n, "kind": "job" if n % 7 else "other"}))
        for n in range(40)
    ]
    records.append((b"k99", b"not json"))
    driver = TestDriver(app)
    for key, value in records:
        driver.engine.append(source, key, value)
    in_memory = sorted((r.partition(), r.key(), r.value()) for r in driver.engine.records(output))
    memory_letters = _letters(
        [
            (0, None, {k: (v or b"").decode() for k, v in r.headers()})
            for r in driver.engine.records(dlq)
        ]
    )
    assert in_memory
    assert {letter[3].rpartition(".")[2] for letter in memory_letters} == {
        "ValueError",
        "SerializationError",
    }

    admin = admin_client(kafka_config)
    created = [TopicSpec(t.name, t.partitions, 1, t.config) for t in topology.topics().values()]
    create_topics(admin, created)
    try:
        producer = Producer({**kafka_config, "enable.idempotence": True})
        for key, value in records:
            producer.produce(source, value, key)
        assert producer.flush(30) == 0
        worker = QueueWorker(app, settings=Settings(bootstrap_servers=kafka_bootstrap))
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        try:
            wait_for(
                lambda: (
                    len(read_all(kafka_config, output)) >= len(in_memory)
                    and len(read_all(kafka_config, dlq)) >= len(memory_letters)
                ),
                90,
                "the queue worker to write every output and dead letter",
            )
        finally:
            worker.request_stop()
            thread.join(timeout=60)
        on_kafka = sorted(
            (m.partition(), m.key(), m.value()) for m in read_all(kafka_config, output)
        )
        assert on_kafka == in_memory
        letters = _letters(
            [
                (0, None, {k: (v or b"").decode() for k, v in m.headers()})
                for m in read_all(kafka_config, dlq)
            ]
        )
        assert letters == memory_letters
    finally:
        delete_topics(admin, [t.name for t in created])
