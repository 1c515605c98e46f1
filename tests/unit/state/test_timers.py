"""Durable timers through TestDriver: scheduled by a processor, fired once by the wall
clock or the stream time, cancelled, retried, dead-lettered; time is virtual."""

from typing import Any

import orjson
import pytest

from streamkit import App, Context, RetryPolicy
from streamkit.errors import ConfigError
from streamkit.state.timers import Timer
from streamkit.testing import TestDriver

T0 = 1_767_225_600_000


def _app(fail_times: int = 0, retry: RetryPolicy | None = None) -> App:
    app = App("t", retry=retry)
    app.topic("orders", partitions=2)
    app.topic("reminders", partitions=2)
    failures = {"left": fail_times}

    def remind(timer: Timer, ctx: Context) -> dict[str, Any]:
        if failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("mailer down")
        return {"order": timer.key, "clock": timer.clock, "data": timer.data, "at": ctx.timestamp}

    @app.processor(input="orders", output="reminders", on_timer=remind)
    def placed(order: dict[str, Any], ctx: Context) -> None:
        assert ctx.timers is not None
        if order.get("paid"):
            ctx.timers.cancel(order["id"])
        elif order.get("clock") == "event":
            ctx.timers.schedule(order["id"], after="1m", clock="event", data=order["amount"])
        else:
            ctx.timers.schedule(order["id"], after="15m", data=order["amount"])

    return app


def test_a_wall_clock_timer_fires_once_when_due_and_a_cancelled_one_never() -> None:
    driver = TestDriver(_app())
    driver.send("orders", {"id": "o1", "amount": 5}, key="o1", timestamp=T0)
    driver.send("orders", {"id": "o2", "amount": 7}, key="o2", timestamp=T0)
    driver.send("orders", {"id": "o2", "paid": True}, key="o2", timestamp=T0)
    driver.advance(14 * 60, clock="wall")
    assert driver.records("reminders") == []
    driver.advance(61, clock="wall")
    (reminder,) = driver.records("reminders")
    assert reminder.key == "o1"
    assert reminder.value["order"] == "o1"
    assert reminder.value["data"] == 5
    assert reminder.value["clock"] == "wall"
    driver.advance(3600)
    assert len(driver.records("reminders")) == 1  # once


def test_an_event_time_timer_fires_when_the_stream_time_reaches_it() -> None:
    driver = TestDriver(_app())
    driver.send("orders", {"id": "o1", "amount": 3, "clock": "event"}, key="o1", timestamp=T0)
    driver.advance(3600, clock="wall")  # the wall clock does not fire it
    assert driver.records("reminders") == []
    driver.send(
        "orders", {"id": "o9", "amount": 1, "clock": "event"}, key="o1", timestamp=T0 + 60_000
    )
    (reminder,) = driver.records("reminders")
    assert reminder.value["order"] == "o1"
    assert reminder.value["at"] == T0 + 60_000


def test_timers_are_kept_in_the_store_changelog() -> None:
    driver = TestDriver(_app())
    driver.send("orders", {"id": "o1", "amount": 5}, key="o1", timestamp=T0)
    changelog = driver.records("t-placed-timers-changelog")
    assert len(changelog) == 1
    doc = orjson.loads(changelog[0].value)["s"]
    assert (doc["k"], doc["c"], doc["x"]) == ("o1", "wall", 5)
    driver.advance(16 * 60)
    assert driver.records("t-placed-timers-changelog")[-1].value is None  # fired: deleted


def test_a_failing_timer_function_is_retried_then_dead_lettered() -> None:
    retried = TestDriver(_app(fail_times=2, retry=RetryPolicy(attempts=5, backoff=1, jitter=0)))
    retried.send("orders", {"id": "o1", "amount": 5}, key="o1", timestamp=T0)
    retried.advance(15 * 60, clock="wall")
    assert retried.records("reminders") == []  # failed: fires again in 1 s
    retried.advance(1, clock="wall")
    assert retried.records("reminders") == []  # failed again: fires again in 2 s
    retried.advance(1, clock="wall")
    assert retried.records("reminders") == []
    retried.advance(1, clock="wall")
    assert [r.value["order"] for r in retried.records("reminders")] == ["o1"]
    assert retried.dead_letters() == []

    given_up = TestDriver(_app(fail_times=1))
    given_up.send("orders", {"id": "o1", "amount": 5}, key="o1", timestamp=T0)
    given_up.advance(16 * 60, clock="wall")
    (letter,) = given_up.dead_letters("orders")
    assert letter.error_class == "builtins.ConnectionError"
    assert orjson.loads(letter.value or b"")["timer"]["key"] == "o1"
    assert letter.error["offset"] == "-1"


def test_on_timer_needs_a_processor_that_can_set_timers() -> None:
    app = App("t")
    app.topic("in")
    with pytest.raises(ConfigError, match="takes no ctx to set timers with"):
        app.processor(input="in", on_timer=lambda timer: None)(lambda event: None)
