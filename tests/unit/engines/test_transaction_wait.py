"""An exactly-once worker waits on a transaction left open by another of the app's
producers as long as the app's own ``transaction.timeout.ms`` lets it stay open: a user's
longer timeout must not make restores give up before the coordinator aborts it."""

import pytest

from streamkit import App
from streamkit.engines.kafka import KafkaWorker
from streamkit.engines.kafka.clients import TRANSACTION_TIMEOUT_MS, open_transaction_wait
from streamkit.settings import Settings


def _worker(guarantee: str, kafka: dict[str, str]) -> KafkaWorker:
    app = App("txn-wait", guarantee=guarantee)
    app.topic("in")
    app.topic("out")

    @app.processor(input="in", output="out")
    def same(event: object) -> object:
        return event

    # Clients are created but never used: nothing here talks to a broker.
    return KafkaWorker(app, settings=Settings(bootstrap_servers="127.0.0.1:9", kafka=kafka))


@pytest.mark.parametrize(
    ("guarantee", "kafka", "timeout_ms"),
    [
        ("exactly_once", {}, TRANSACTION_TIMEOUT_MS),
        ("exactly_once", {"transaction.timeout.ms": "300000"}, 300_000),
        ("exactly_once", {"transaction.timeout.ms": "15000"}, 15_000),
        ("at_least_once", {}, TRANSACTION_TIMEOUT_MS),
    ],
)
def test_the_restore_waits_as_long_as_the_apps_transaction_timeout(
    guarantee: str, kafka: dict[str, str], timeout_ms: int
) -> None:
    worker = _worker(guarantee, kafka)
    try:
        assert worker.restore.transaction_timeout_ms == timeout_ms
        # Past the timeout and the coordinator's 10 s sweep for timed-out transactions.
        assert open_transaction_wait(timeout_ms) > timeout_ms / 1000 + 10
    finally:
        worker.consumer.close()
