"""Exactly once: an aborted transaction holds its partitions for a growing wait, and a
committed one must start that wait over (regression: found by the chaos suite's long
zombie run, where the waits of a long-lived worker only ever grew, to 30 s per abort, and
the group's commits stalled after a few fencing cycles)."""

import uuid
from collections.abc import Mapping
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, Producer

from streamkit import App
from streamkit.engines.kafka import worker as kafka_worker
from streamkit.engines.kafka.transactions import Transactions
from streamkit.testing.plugin import TopicFactory
from tests.integration.helpers import start_worker
from tests.integration.runtime.conftest import wait_for


class AbortFirst(Transactions):
    """Aborts (for real) the first transaction it is asked to commit."""

    aborted = 0

    def commit(self, offsets: Mapping[tuple[str, int], int]) -> bool:
        if not AbortFirst.aborted:
            AbortFirst.aborted += 1
            self.abort()
            return False
        return super().commit(offsets)


def test_a_committed_transaction_resets_the_partitions_abort_backoff(
    kafka_bootstrap: str,
    kafka_config: dict[str, Any],
    topic_factory: TopicFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source, sink = topic_factory(), topic_factory()
    app = App(f"txn-backoff-{uuid.uuid4().hex[:6]}", guarantee="exactly_once", dead_letters=False)
    app.topic(source)
    app.topic(sink)

    @app.processor(input=source, output=sink)
    def same(event: Any) -> Any:
        return event

    monkeypatch.setattr(kafka_worker, "Transactions", AbortFirst)
    monkeypatch.setattr(AbortFirst, "aborted", 0)
    producer = Producer(kafka_config)
    for n in range(3):
        producer.produce(source, orjson.dumps({"n": n}), b"k")
    assert producer.flush(10) == 0
    worker, thread = start_worker(app, kafka_bootstrap)
    reader = Consumer(
        {
            **kafka_config,
            "group.id": f"read-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    reader.subscribe([sink])
    values: list[int] = []

    def visible() -> int:
        for msg in reader.consume(100, timeout=0.5):
            if msg.error() is None and msg.value() is not None:
                values.append(orjson.loads(msg.value())["n"])
        return len(values)

    try:
        wait_for(lambda: visible() >= 3, 60, "the 3 records after one abort")
        assert AbortFirst.aborted == 1
        # The same thread resets the backoff right after the commit that made them visible.
        wait_for(
            lambda: all(t.backoff.current == 0 for t in list(worker.tasks.values())),
            10,
            "the abort backoff to start over",
        )
        visible()
    finally:
        worker.request_stop()
        thread.join(timeout=60)
        reader.close()
    assert sorted(values) == [0, 1, 2]  # the aborted batch is not visible: exactly once
