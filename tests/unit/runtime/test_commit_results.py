"""A failed asynchronous commit must be sent again (regression: found by the chaos suite,
where a commit during a cooperative rebalance failed and the worker never retried it)."""

from collections.abc import Iterator

import pytest
from confluent_kafka import KafkaError, TopicPartition

from streamkit import App
from streamkit.engines.kafka import KafkaWorker
from streamkit.settings import Settings


@pytest.fixture
def worker() -> Iterator[KafkaWorker]:
    app = App("commits")
    app.topic("in")
    app.topic("out")

    @app.processor(input="in", output="out")
    def same(event: object) -> object:
        return event

    # Clients are created but never used: nothing here talks to a broker.
    made = KafkaWorker(app, settings=Settings(bootstrap_servers="127.0.0.1:9"))
    yield made
    made.consumer.close()


def test_a_failed_commit_is_forgotten_so_the_next_commit_sends_it(worker: KafkaWorker) -> None:
    first, second = worker.open_task(("in", 0)), worker.open_task(("in", 1))
    first.committed_at(42)
    second.committed_at(7)
    worker.on_commit(KafkaError(KafkaError.REBALANCE_IN_PROGRESS), [TopicPartition("in", 0, 42)])
    assert first.committed is None
    assert second.committed == 7


def test_a_later_commit_is_not_forgotten_for_an_earlier_failure(worker: KafkaWorker) -> None:
    task = worker.open_task(("in", 0))
    task.committed_at(50)  # committed again since the failed one was sent
    worker.on_commit(KafkaError(KafkaError.REBALANCE_IN_PROGRESS), [TopicPartition("in", 0, 42)])
    assert task.committed == 50


def test_a_successful_commit_changes_nothing(worker: KafkaWorker) -> None:
    task = worker.open_task(("in", 0))
    task.committed_at(42)
    worker.on_commit(None, [TopicPartition("in", 0, 42)])
    assert task.committed == 42
