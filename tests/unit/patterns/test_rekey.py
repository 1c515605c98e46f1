"""Re-keying: an aggregate or window keyed by a field its input is not keyed by reads it
through ``<app>-<name>-repartition``, so its state equals the fold per field value
whatever the records' Kafka keys (and after a redelivery too)."""

import random
from collections import Counter
from typing import Any

import pytest

from streamkit import App
from streamkit.errors import ConfigError
from streamkit.testing import TestDriver

T0 = 1_767_225_600_000


def _app(keyed_by: str | None = None) -> App:
    app = App("shop")
    app.topic("orders", partitions=4, keyed_by=keyed_by)
    app.topic("per-minute", partitions=4)

    @app.aggregate(input="orders", store="per-customer", key="customer")
    def totals(state: dict[str, Any] | None, order: dict[str, Any]) -> dict[str, Any]:
        state = state or {"orders": 0, "spent": 0}
        return {"orders": state["orders"] + 1, "spent": state["spent"] + order["amount"]}

    @app.window(
        input="orders", store="customer-minutes", key="customer", size="1m", output="per-minute"
    )
    def per_minute(count: int | None, order: dict[str, Any]) -> int:
        return (count or 0) + 1

    return app


def test_an_aggregate_over_records_keyed_by_something_else_equals_the_fold_per_field() -> None:
    driver = TestDriver(_app())
    rng = random.Random(3)
    orders = [
        {"n": n, "customer": f"c{rng.randrange(7)}", "amount": rng.randrange(1, 50)}
        for n in range(300)
    ]
    for order in orders:
        driver.send("orders", order, key=f"order-{order['n']}", timestamp=T0 + order["n"] * 100)
    for customer in {o["customer"] for o in orders}:
        mine = [o for o in orders if o["customer"] == customer]
        assert driver.state("per-customer", customer) == {
            "orders": len(mine),
            "spent": sum(o["amount"] for o in mine),
        }
    assert driver.dead_letters() == []
    # Redelivered (a crash before the commit), the repartition topic's records or the
    # source's (the router then writes them again, at new offsets): nothing is folded twice.
    (first, *_) = driver.records("shop-totals-repartition")
    driver.redeliver("shop-totals-repartition", first.partition, first.offset)
    for partition in range(4):
        driver.redeliver("orders", partition, 0)
    assert len(driver.records("shop-totals-repartition")) == 2 * len(orders)
    for customer, count in Counter(o["customer"] for o in orders).items():
        assert driver.state("per-customer", customer)["orders"] == count
    driver.advance(120)
    counts: Counter[str] = Counter()
    for record in driver.records("per-minute"):
        counts[record.key] += record.value["value"]
    assert counts == Counter(o["customer"] for o in orders)


def test_an_input_declared_keyed_by_the_field_is_read_as_it_is() -> None:
    app = _app(keyed_by="customer")
    assert app.repartitioned == {}
    driver = TestDriver(app)
    driver.send("orders", {"n": 1, "customer": "c1", "amount": 5}, key="someone-else")
    (letter, _) = driver.dead_letters("orders")  # the declaration is enforced
    assert letter.error_class == "streamkit.errors.KeyMismatchError"


def test_a_repartitioned_input_must_be_declared_first() -> None:
    app = App("shop")
    with pytest.raises(ConfigError, match="its input orders must be declared first"):
        app.aggregate(input="orders", store="s", key="customer")(lambda s, e: s)
