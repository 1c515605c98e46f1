"""Windowed stream-stream joins through TestDriver, against an oracle computed from both
inputs: every pair with the same key and event times at most ``within`` apart, once."""

import random
from typing import Any

import orjson
import pytest

from streamkit import App
from streamkit.records import key_partition
from streamkit.testing import TestDriver

T0 = 1_767_225_600_000
WITHIN_MS = 60_000


def _app(how: str, within: str = "1m", grace: str | None = None) -> App:
    app = App("pay")
    app.topic("orders", partitions=3)
    app.topic("payments", partitions=2)
    app.topic("paid", partitions=3)

    @app.join(
        left="orders",
        right="payments",
        on="order_id",
        within=within,
        how=how,
        grace=grace,
        output="paid",
    )
    def paid(order: dict[str, Any] | None, payment: dict[str, Any] | None) -> dict[str, Any]:
        return {"o": order and order["n"], "p": payment and payment["n"]}

    return app


def _traffic(seed: int) -> list[tuple[str, dict[str, Any], int]]:
    rng = random.Random(seed)
    events = []
    for n in range(120):
        side = "orders" if rng.random() < 0.5 else "payments"
        t = T0 + n * 5_000 + rng.randrange(-20_000, 20_000)  # out of order, within grace
        events.append((side, {"n": n, "order_id": f"o{rng.randrange(12)}"}, t))
    return events


@pytest.mark.parametrize("seed", [1, 2])
def test_an_inner_join_gives_every_pair_within_the_window_once(seed: int) -> None:
    driver = TestDriver(_app("inner"))
    events = _traffic(seed)
    for topic, event, t in events:
        driver.send(topic, event, key=f"k{event['n']}", timestamp=t)
    # The oracle: pairs whose partner was still waiting when the second one arrived, that
    # is, not evicted yet by the stream time of their repartition topic's partition; a
    # record later than its own window is late and joins nothing.
    expected, late, seen, stream = set(), set(), [], [-1] * 3
    for topic, event, t in events:
        p = key_partition(event["order_id"].encode(), 3)
        stream[p] = max(stream[p], t)
        if t + WITHIN_MS < stream[p]:
            late.add(event["n"])
            continue
        for other_topic, other, ot in seen:
            if (
                other_topic != topic
                and other["order_id"] == event["order_id"]
                and abs(ot - t) <= WITHIN_MS
                and ot + WITHIN_MS >= stream[p]
            ):
                pair = (event, other) if topic == "orders" else (other, event)
                expected.add((pair[0]["n"], pair[1]["n"]))
        seen.append((topic, event, t))
    got = [(v["o"], v["p"]) for v in driver.values("paid")]
    assert len(got) == len(set(got))
    assert set(got) == expected
    assert len(expected) > 20  # the traffic does join
    assert {orjson.loads(r.value)["event"]["n"] for r in driver.records("pay-paid-late")} == late


def test_a_left_join_gives_unmatched_orders_once_their_window_passes() -> None:
    driver = TestDriver(_app("left"))
    driver.send("orders", {"n": 1, "order_id": "a"}, timestamp=T0)
    driver.send("orders", {"n": 2, "order_id": "b"}, timestamp=T0)
    driver.send("payments", {"n": 3, "order_id": "a"}, timestamp=T0 + 30_000)
    assert driver.values("paid") == [{"o": 1, "p": 3}]
    driver.advance(31, clock="event")  # the stream time passes T0 + 1m: the orders go
    assert driver.values("paid") == [{"o": 1, "p": 3}, {"o": 2, "p": None}]
    assert driver.state("paid", "a") is not None  # payment 3 waits until T0 + 90s
    driver.advance(60, clock="event")
    assert driver.state("paid", "a") == {"l": [], "r": [], "out": []}  # its memory, a while
    driver.advance(61, clock="event")
    assert driver.state("paid", "a") is None
    assert driver.state("paid", "b") is None
    assert len(driver.values("paid")) == 2


def test_an_outer_join_gives_unmatched_records_of_both_sides() -> None:
    driver = TestDriver(_app("outer"))
    driver.send("orders", {"n": 1, "order_id": "a"}, timestamp=T0)
    driver.send("payments", {"n": 2, "order_id": "b"}, timestamp=T0)
    driver.advance(120, clock="event")
    assert sorted(driver.values("paid"), key=str) == [{"o": 1, "p": None}, {"o": None, "p": 2}]


def _pairs(driver: TestDriver) -> list[tuple[Any, Any]]:
    return [(v["o"], v["p"]) for v in driver.values("paid")]


@pytest.mark.parametrize("copy", ["redelivered", "re-routed"])
def test_a_copy_of_an_evicted_record_is_not_folded_again(copy: str) -> None:
    # Keys a and c share a partition of the repartition topic.
    driver = TestDriver(_app("left", within="5s"))
    order = driver.send("orders", {"n": 1, "order_id": "a"}, timestamp=T0)
    driver.send("payments", {"n": 2, "order_id": "a"}, timestamp=T0 + 1_000)
    driver.send("orders", {"n": 3, "order_id": "c"}, timestamp=T0 + 20_000)
    driver.send("orders", {"n": 4, "order_id": "c"}, timestamp=T0 + 21_000)
    assert driver.state("paid", "a") == {"l": [], "r": [], "out": []}  # evicted
    if copy == "redelivered":  # the repartition topic's record again
        routed = driver.records("pay-paid-repartition")[0]
        driver.redeliver("pay-paid-repartition", routed.partition, routed.offset)
    else:  # the router forwards it again
        driver.redeliver("orders", order.partition, order.offset)
    assert _pairs(driver) == [(1, 2)]
    driver.advance(60, clock="event")
    assert sorted(_pairs(driver), key=str) == [(1, 2), (3, None), (4, None)]
    assert driver.records("pay-paid-late") == []


def test_a_record_redelivered_after_its_key_was_forgotten_is_not_late() -> None:
    # The key's eviction and the end of its memory reached the changelog, the repartition
    # topic's commit did not: its records come again to a key with no memory. They were
    # handled (paired) before: not late, and not paired again.
    driver = TestDriver(_app("left", within="5s"))
    driver.send("orders", {"n": 1, "order_id": "a"}, timestamp=T0)
    driver.send("payments", {"n": 2, "order_id": "a"}, timestamp=T0 + 1_000)
    driver.send("orders", {"n": 3, "order_id": "c"}, timestamp=T0 + 20_000)
    driver.send("orders", {"n": 4, "order_id": "c"}, timestamp=T0 + 40_000)  # a forgotten
    assert driver.state("paid", "a") is None
    routed = driver.records("pay-paid-repartition")[0]
    driver.redeliver("pay-paid-repartition", routed.partition, routed.offset)
    # (c's records, redelivered too, write its last change again: identical copies)
    assert set(_pairs(driver)) == {(1, 2), (3, None)}
    assert driver.records("pay-paid-late") == []


def test_a_record_later_than_its_window_and_grace_goes_to_the_late_topic() -> None:
    driver = TestDriver(_app("left", within="5s", grace="10s"))
    driver.send("orders", {"n": 1, "order_id": "a"}, timestamp=T0)
    driver.send("orders", {"n": 2, "order_id": "c"}, timestamp=T0 + 14_000)
    driver.send("payments", {"n": 3, "order_id": "a"}, timestamp=T0 + 4_000)  # in grace
    driver.send("orders", {"n": 4, "order_id": "c"}, timestamp=T0 + 30_000)
    driver.send("payments", {"n": 5, "order_id": "a"}, timestamp=T0 + 2_000)  # too late
    assert _pairs(driver) == [(1, 3), (2, None)]
    (late,) = driver.records("pay-paid-late")
    assert orjson.loads(late.value)["event"] == {"n": 5, "order_id": "a"}
    assert late.headers["__streamkit.late.window.end"] == str(T0 + 7_000).encode()
    assert late.headers["__streamkit.late.watermark"] == str(T0 + 20_000).encode()
    assert late.headers["__streamkit.late.store"] == b"paid"
    assert driver.engine.counters.late == 1


@pytest.mark.parametrize("unrelated", [1, 6])
def test_eviction_is_by_time_whatever_the_traffic_of_other_keys(unrelated: int) -> None:
    driver = TestDriver(_app("left", within="5s"))
    driver.send("orders", {"n": 1, "order_id": "a"}, timestamp=T0)
    driver.send("orders", {"n": 2, "order_id": "a"}, timestamp=T0 + 50_000)
    for i in range(unrelated):  # key c, same partition: the stream time moves to 100 s
        driver.send("orders", {"n": 10 + i, "order_id": "c"}, timestamp=T0 + 100_000 - i)
    driver.send("payments", {"n": 3, "order_id": "a"}, timestamp=T0 + 52_000)
    assert _pairs(driver) == [(1, None), (2, None)]  # evicted; payment 3 is late
    assert len(driver.records("pay-paid-late")) == 1
