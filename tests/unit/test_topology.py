"""Every derived name and role in one place: what `streamkit topics list` shows."""

from typing import Any

from streamkit import App, Dedupe
from streamkit.topology import Role, Topology


def _app() -> App:
    app = App("shop")
    app.topic("orders", partitions=3, keyed_by="customer")
    app.topic("checked", partitions=3)
    app.topic("totals", partitions=3)
    app.topic("unused")

    @app.processor(input="orders", output="checked", retry_topics=["1s"], dedupe=Dedupe(field="id"))
    def check(order: Any) -> Any:
        return order

    @app.aggregate(input="orders", store="per-customer", key="customer", output="totals")
    def total(state: Any, order: Any) -> Any:
        return order

    return app


def test_every_topic_has_its_roles_and_projections_are_outputs() -> None:
    roles = Topology(_app()).roles()
    assert roles["orders"] == (Role.INPUT,)
    assert roles["checked"] == (Role.OUTPUT,)
    assert roles["totals"] == (Role.OUTPUT, Role.PROJECTION)
    assert roles["unused"] == (Role.DECLARED,)
    assert roles["shop-orders-dlq"] == (Role.DEAD_LETTERS,)
    assert roles["shop-orders-parked"] == (Role.PARKED,)
    assert roles["shop-check-retry-1"] == (Role.RETRY,)
    assert roles["shop-per-customer-changelog"] == (Role.CHANGELOG,)
    assert roles["shop-check-dedupe-changelog"] == (Role.CHANGELOG,)


def test_derived_topics_are_partitioned_like_their_source_and_changelogs_compacted() -> None:
    topics = Topology(_app()).topics()
    for name in ("shop-orders-dlq", "shop-check-retry-1", "shop-per-customer-changelog"):
        assert topics[name].partitions == 3
    assert topics["shop-per-customer-changelog"].config == {"cleanup.policy": "compact"}
    assert Topology(_app()).consumed() == ["orders", "shop-check-retry-1"]
