"""Fan-in through TestDriver: a group completes once when all its parts are in, whatever
topics and keys they came with; duplicates and late parts are ignored; the timeout gives a
partial result or a dead letter; a closed group is forgotten after ``retain``."""

from typing import Any

import orjson
import pytest

from streamkit import App
from streamkit.testing import TestDriver

CHECKS = ("payments.ok", "stock.ok", "fraud.ok")


def _orders(on_timeout: str = "partial", complete_when: Any = None) -> App:
    app = App("orders")
    for name in CHECKS:
        app.topic(name, partitions=2)
    app.topic("decisions", partitions=3)

    @app.gather(
        inputs=CHECKS,
        correlate="order_id",
        output="decisions",
        timeout="30s",
        on_timeout=on_timeout,
        complete_when=complete_when,
        retain="1h",
    )
    def decide(parts: dict[str, Any], complete: bool) -> dict[str, Any]:
        order_id = next(iter(parts.values()))["order_id"]
        ok = complete and all(p["ok"] for p in parts.values())
        return {"order_id": order_id, "approved": ok, "answered": sorted(parts)}

    return app


def test_a_group_completes_once_when_every_part_is_in_whatever_its_key() -> None:
    driver = TestDriver(_orders())
    driver.send("payments.ok", {"order_id": "o1", "ok": True}, key="pay-77")
    driver.send("stock.ok", {"order_id": "o1", "ok": True}, key="sku-3")
    driver.send("payments.ok", {"order_id": "o1", "ok": False}, key="pay-78")  # duplicate
    assert driver.values("decisions") == []
    driver.send("fraud.ok", {"order_id": "o1", "ok": True})
    driver.send("fraud.ok", {"order_id": "o1", "ok": False})  # after completion: ignored
    (decision,) = driver.records("decisions")
    assert decision.key == "o1"
    assert decision.value == {"order_id": "o1", "approved": True, "answered": sorted(CHECKS)}
    driver.advance(60)  # the timeout was cancelled: nothing more
    assert len(driver.values("decisions")) == 1


def test_an_incomplete_group_times_out_partial_once() -> None:
    driver = TestDriver(_orders())
    driver.send("payments.ok", {"order_id": "o2", "ok": True})
    driver.advance(29)
    assert driver.values("decisions") == []
    driver.advance(2)
    assert driver.values("decisions") == [
        {"order_id": "o2", "approved": False, "answered": ["payments.ok"]}
    ]
    driver.send("stock.ok", {"order_id": "o2", "ok": True})  # late: the group is closed
    driver.advance(60)
    assert len(driver.values("decisions")) == 1


def test_a_timeout_can_dead_letter_the_parts_instead() -> None:
    driver = TestDriver(_orders(on_timeout="dead_letter"))
    driver.send("payments.ok", {"order_id": "o3", "ok": True})
    driver.send("stock.ok", {"order_id": "o3", "ok": True})
    driver.advance(31)
    assert driver.values("decisions") == []
    (letter,) = driver.dead_letters()
    assert letter.error_class == "streamkit.errors.GatherTimeoutError"
    assert "group o3 timed out after 30s with 2 part(s)" in letter.error["exception.message"]
    parts = orjson.loads(letter.value)["timer"]["parts"]
    assert set(parts) == {"payments.ok", "stock.ok"}
    driver.send("fraud.ok", {"order_id": "o3", "ok": True})  # closed: no decision, no letter
    driver.advance(60)
    assert driver.values("decisions") == []
    assert len(driver.dead_letters()) == 1


@pytest.mark.parametrize("rule", [2, lambda parts: "fraud.ok" in parts])
def test_complete_when_is_a_count_or_a_predicate(rule: Any) -> None:
    driver = TestDriver(_orders(complete_when=rule))
    driver.send("stock.ok", {"order_id": "o4", "ok": True})
    driver.send("fraud.ok", {"order_id": "o4", "ok": True})
    assert driver.values("decisions") == [
        {"order_id": "o4", "approved": True, "answered": ["fraud.ok", "stock.ok"]}
    ]


def test_a_closed_group_is_forgotten_after_retain_and_a_new_part_starts_another() -> None:
    driver = TestDriver(_orders(complete_when=1))
    driver.send("stock.ok", {"order_id": "o5", "ok": True})
    driver.send("stock.ok", {"order_id": "o5", "ok": True})  # within retain: a duplicate
    assert len(driver.values("decisions")) == 1
    assert driver.state("decide", "o5") == {"closed": True, "by": "complete"}
    driver.advance(3601, clock="wall")
    assert driver.state("decide", "o5") is None
    driver.send("stock.ok", {"order_id": "o5", "ok": True})
    assert len(driver.values("decisions")) == 2


def test_a_redelivered_part_reemits_the_same_decision_not_another_group() -> None:
    driver = TestDriver(_orders(complete_when=1))
    driver.send("stock.ok", {"order_id": "o6", "ok": True})
    topic = "orders-decide-repartition"
    (routed,) = driver.records(topic)
    driver.redeliver(topic, routed.partition, routed.offset)  # at least once, after a crash
    first, again = driver.values("decisions")
    assert first == again


def _written_unread(driver: TestDriver, topic: str, value: Any, timestamp: int) -> None:
    """A record in Kafka that the worker has not read yet (it was down, or behind)."""
    raw = driver.engine.pipeline.serdes[topic].value.encode(value)
    driver.engine.store(topic, None, raw, [], timestamp)


def test_a_part_written_before_the_deadline_counts_however_late_it_is_read() -> None:
    driver = TestDriver(_orders())
    driver.send("payments.ok", {"order_id": "o7", "ok": True})
    opened = driver.now
    _written_unread(driver, "stock.ok", {"order_id": "o7", "ok": True}, opened + 20_000)
    (task,) = [
        t
        for t in driver.engine.tasks.values()
        if t.state is not None and t.state.get("decide", "o7", 0) is not None
    ]
    assert not task.wall_due(opened + 40_000)  # the router's input is not read yet
    driver.advance(40, clock="wall")
    assert driver.values("decisions") == [
        {"order_id": "o7", "approved": False, "answered": ["payments.ok", "stock.ok"]}
    ]


def test_a_part_written_after_the_deadline_does_not_count_however_early_it_is_read() -> None:
    driver = TestDriver(_orders())
    driver.send("payments.ok", {"order_id": "o8", "ok": True})
    opened = driver.now
    driver.send("stock.ok", {"order_id": "o8", "ok": True}, timestamp=opened + 31_000)
    driver.send("fraud.ok", {"order_id": "o8", "ok": True}, timestamp=opened + 5_000)
    assert driver.values("decisions") == []  # two of three parts came on time
    driver.advance(31, clock="wall")
    assert driver.values("decisions") == [
        {"order_id": "o8", "approved": False, "answered": ["fraud.ok", "payments.ok"]}
    ]
