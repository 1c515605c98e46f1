"""The fulfilment example through TestDriver: each path of the saga ends once, with the
side effects (and only the compensations) its steps say."""

from typing import Any

from processors import fulfilment
from streamkit.testing import TestDriver


def _order(order_id: str, *, total: int = 5_000, quantity: int = 2, card: str = "ok") -> Any:
    return {
        "order_id": order_id,
        "sku": "sku-1",
        "quantity": quantity,
        "total_cents": total,
        "card": card,
    }


def _effects(driver: TestDriver, order_id: str) -> list[str]:
    found = []
    for topic in ("stock", "payments", "shipments", "escalations"):
        for value in driver.values(f"fulfilment.{topic}"):
            if value["order_id"] == order_id:
                found.append(f"{topic}:{value.get('action', '')}".rstrip(":"))
    return sorted(found)


def _end(driver: TestDriver, order_id: str) -> dict[str, Any]:
    (end,) = [v for v in driver.values("fulfilment.done") if v["id"] == order_id]
    return end


def test_each_path_of_the_saga_ends_once_with_its_side_effects() -> None:
    driver = TestDriver(fulfilment.app)
    driver.send("fulfilment.orders", _order("small"))
    driver.send("fulfilment.orders", _order("declined", card="declined"))
    driver.send("fulfilment.orders", _order("huge", quantity=500))
    driver.send("fulfilment.orders", _order("big", total=250_000))
    driver.send("fulfilment.orders", _order("rejected", total=250_000))
    driver.send("fulfilment.orders", _order("escalated", total=250_000))
    driver.send("fulfilment.orders", _order("abandoned", total=250_000))
    driver.send("fulfilment.approvals", {"order_id": "big", "approved": True, "by": "ann"})
    driver.send("fulfilment.approvals", {"order_id": "rejected", "approved": False, "by": "ann"})
    driver.advance(31)  # no answer: escalate
    driver.send("fulfilment.approvals", {"order_id": "escalated", "approved": True, "by": "mo"})
    driver.advance(31)  # the manager did not answer either

    assert _end(driver, "small")["status"] == "completed"
    assert _end(driver, "small")["result"] == {"order_id": "small", "charged_cents": 5_000}
    assert _effects(driver, "small") == ["payments", "shipments", "stock:reserve"]
    assert _end(driver, "declined")["status"] == "compensated"
    assert (
        _end(driver, "declined")["error"] == "step charge_payment failed: StepFailed: card declined"
    )
    assert _effects(driver, "declined") == ["stock:release", "stock:reserve"]
    assert _end(driver, "huge")["status"] == "failed"  # nothing to undo
    assert _effects(driver, "huge") == []
    assert _end(driver, "big")["status"] == "completed"
    assert _effects(driver, "big") == ["payments", "shipments", "stock:reserve"]
    assert _end(driver, "rejected")["status"] == "compensated"
    assert _effects(driver, "rejected") == ["stock:release", "stock:reserve"]
    assert _end(driver, "escalated")["status"] == "completed"
    assert _effects(driver, "escalated") == [
        "escalations",
        "payments",
        "shipments",
        "stock:reserve",
    ]
    assert _end(driver, "abandoned")["status"] == "compensated"
    assert _effects(driver, "abandoned") == ["escalations", "stock:release", "stock:reserve"]
    ends = [v["id"] for v in driver.values("fulfilment.done")]
    assert sorted(ends) == sorted(set(ends))  # one terminal state each
    payment = next(v for v in driver.values("fulfilment.payments") if v["order_id"] == "small")
    assert payment["idempotency_key"] == "fulfilment/small/charge_payment"
