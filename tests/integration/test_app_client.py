"""The public client an app's scripts and tests use: topics, contract-checked events in
and out, the group's progress; through the pytest plugin's ``app_client`` fixture."""

import uuid
from pathlib import Path
from typing import Any

import pytest

from streamkit import App
from streamkit.errors import ContractError
from streamkit.ops.admin import admin_client, delete_topics
from streamkit.testing.plugin import AppClientFactory
from streamkit.topology import Topology
from tests.integration.helpers import start_worker
from tests.integration.runtime.conftest import wait_for

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def test_an_app_is_fed_and_read_through_its_contracts(
    app_client: AppClientFactory, kafka_bootstrap: str, kafka_config: dict[str, Any]
) -> None:
    tag = uuid.uuid4().hex[:8]
    app = App(f"client-{tag}", schemas=SCHEMAS)
    placed = app.topic(f"placed-{tag}", value="OrderPlaced", partitions=2)
    rejected = app.topic(f"rejected-{tag}", value="OrderRejected", partitions=2)

    @app.processor(input=placed, output=rejected)
    def reject(order: dict[str, Any]) -> dict[str, Any]:
        return {
            "order_id": order["order_id"],
            "customer_id": order["customer_id"],
            "reason": "demo",
        }

    client = app_client(app)
    outcome = client.create_topics()
    try:
        assert outcome[placed.name] == "created"
        assert Topology(app).dlq(placed.name) in outcome
        order = {
            "order_id": "o-1",
            "customer_id": "c-1",
            "country": "DE",
            "lines": [],
            "placed_at": 1_767_225_600_000,
        }
        for n in range(10):
            client.send(placed.name, {**order, "order_id": f"o-{n}"}, key=f"c-{n % 3}")
        with pytest.raises(ContractError, match=r"field OrderPlaced\.colour is not in it"):
            client.send(placed.name, {**order, "colour": "red"}, key="c-1")
        assert client.flush() == 10
        assert not client.caught_up()
        worker, thread = start_worker(app, kafka_bootstrap)
        try:
            wait_for(client.caught_up, 60, "the app to commit every order")
        finally:
            worker.request_stop()
            thread.join(timeout=60)
        events = client.read(rejected.name)
        assert sorted(e.value["order_id"] for e in events) == [f"o-{n}" for n in range(10)]
        assert {e.key for e in events} == {"c-0", "c-1", "c-2"}
        sent = client.read(placed.name)
        assert sent[0].value["channel"] == "web"  # decoded with the contract's default
    finally:
        delete_topics(admin_client(kafka_config), list(Topology(app).topics()))
