"""The checkout example through TestDriver: fan-out to three checks, the fraud check
enriched from the customers table, one decision per order (or one at the timeout)."""

import datetime as dt
from typing import Any

import pytest

from processors.checkout import app
from streamkit.testing import TestDriver

PLACED = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _order(n: int, customer: str = "c-1", items: int = 3, cents: int = 9_900) -> dict[str, Any]:
    return {
        "order_id": f"o-{n}",
        "customer_id": customer,
        "country": "DE",
        "item_count": items,
        "total_cents": cents,
        "channel": "web",
        "placed_at": PLACED,
    }


@pytest.fixture
def driver() -> TestDriver:
    driver = TestDriver(app)
    for customer, risk in (("c-1", 10), ("c-2", 95)):
        profile = {"customer_id": customer, "tier": "gold", "risk": risk, "country": "DE"}
        driver.send("customers.profiles", profile, key=customer)
    return driver


def test_each_order_gets_one_decision_from_its_three_checks(driver: TestDriver) -> None:
    orders = [
        _order(1),
        _order(2, cents=900_000),
        _order(3, items=40),
        _order(4, "c-2"),
        _order(5, "c-404"),
    ]
    for order in orders:
        driver.send("orders.validated", order, key=order["customer_id"])
    decisions = {d.key: d.value for d in driver.records("orders.decisions")}
    assert len(driver.records("orders.decisions")) == len(orders)
    assert {k: (v["approved"], v["reasons"]) for k, v in decisions.items()} == {
        "o-1": (True, []),
        "o-2": (False, ["over the card limit"]),
        "o-3": (False, ["not enough stock"]),
        "o-4": (False, ["high fraud risk"]),
        "o-5": (False, ["unknown customer"]),
    }
    assert all(v["complete"] for v in decisions.values())


def test_an_order_missing_an_answer_is_decided_at_the_timeout(driver: TestDriver) -> None:
    answer = {"order_id": "o-9", "check": "payment", "ok": True, "reason": None}
    driver.send("checkout.payment", answer, key="o-9")  # the other checks never answer
    driver.advance(29)
    assert driver.values("orders.decisions") == []
    driver.advance(2)
    assert driver.values("orders.decisions") == [
        {
            "order_id": "o-9",
            "approved": False,
            "complete": False,
            "reasons": ["no fraud answer", "no stock answer"],
        }
    ]
