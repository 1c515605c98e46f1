"""Timers of aggregates through TestDriver: a fold sets a timer for its state key, and
when it fires ``on_timer`` gives the key's next state (into the store, the changelog and
the projection); a failed function's timer changes are undone."""

from typing import Any

import orjson
import pytest

from streamkit import App, Context, RetryPolicy
from streamkit.errors import ConfigError
from streamkit.state.timers import Timer
from streamkit.testing import TestDriver

T0 = 1_767_225_600_000


def _carts(fail_timer: int = 0, retry: RetryPolicy | None = None) -> App:
    """Carts: items counted per cart, abandoned 30 minutes after the last item unless
    checked out; an abandoned cart is kept one more day, then deleted."""
    app = App("shop", retry=retry)
    app.topic("items", partitions=2, keyed_by="cart")
    app.topic("carts", partitions=2)
    failures = {"left": fail_timer}

    def expire(cart: dict[str, Any] | None, timer: Timer, ctx: Context) -> Any:
        if failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("store down")
        if timer.name == "purge" or cart is None:
            return None
        assert ctx.timers is not None
        ctx.timers.schedule(after="1d", name="purge")
        return {**cart, "abandoned": True, "at": ctx.timestamp}

    @app.aggregate(input="items", store="cart", key="cart", output="carts", on_timer=expire)
    def add(cart: dict[str, Any] | None, item: dict[str, Any], ctx: Context) -> Any:
        assert ctx.timers is not None
        if item.get("checkout"):
            ctx.timers.cancel()
            return {**(cart or {}), "done": True}
        ctx.timers.schedule(after="30m", data=item["sku"])
        if item.get("poison"):
            raise ValueError("poison item")
        if item.get("other"):
            ctx.timers.schedule("someone-else", after="1m")
        return {"items": (cart or {}).get("items", 0) + 1}

    return app


def test_a_timer_fires_on_timer_whose_result_is_the_keys_next_state_and_projection() -> None:
    driver = TestDriver(_carts())
    driver.send("items", {"cart": "c1", "sku": "a"}, key="c1", timestamp=T0)
    driver.advance(20 * 60, clock="wall")
    driver.send("items", {"cart": "c1", "sku": "b"}, key="c1", timestamp=T0)  # postpones it
    due = driver.now + 30 * 60 * 1000
    driver.advance(20 * 60, clock="wall")
    assert driver.state("cart", "c1") == {"items": 2}
    driver.advance(10 * 60 + 1, clock="wall")
    cart = driver.state("cart", "c1")
    assert cart == {"items": 2, "abandoned": True, "at": due}
    assert [c.value for c in driver.records("carts")][-1] == cart
    changelog = driver.records("shop-cart-changelog")
    assert orjson.loads(changelog[-1].value)["s"] == cart
    driver.advance(24 * 3600, clock="wall")  # purged: deleted, a tombstone projected
    assert driver.state("cart", "c1") is None
    assert driver.records("carts")[-1].value is None
    assert driver.records("shop-cart-changelog")[-1].value is None


def test_a_cancelled_timer_never_fires() -> None:
    driver = TestDriver(_carts())
    driver.send("items", {"cart": "c1", "sku": "a"}, key="c1", timestamp=T0)
    driver.send("items", {"cart": "c1", "checkout": True}, key="c1", timestamp=T0)
    driver.advance(2 * 24 * 3600, clock="wall")
    assert driver.state("cart", "c1") == {"items": 1, "done": True}


def test_a_failed_fold_sets_no_timer() -> None:
    driver = TestDriver(_carts())
    driver.send("items", {"cart": "c1", "sku": "a", "poison": True}, key="c1", timestamp=T0)
    (letter,) = driver.dead_letters("items")
    assert letter.error_class == "builtins.ValueError"
    assert driver.records("shop-add-timers-changelog")[-1].value is None  # set, then undone
    driver.advance(3600, clock="wall")
    assert driver.state("cart", "c1") is None  # the timer never fired into a state


def test_an_aggregate_sets_timers_only_for_the_state_key_it_folds() -> None:
    driver = TestDriver(_carts())
    driver.send("items", {"cart": "c1", "sku": "a", "other": True}, key="c1", timestamp=T0)
    (letter,) = driver.dead_letters("items")
    assert (
        "about the state key being folded ('c1'), not 'someone-else'"
        in letter.error["exception.message"]
    )
    driver.advance(3600, clock="wall")
    assert driver.state("cart", "c1") is None


def test_a_failing_on_timer_leaves_the_state_and_fires_again() -> None:
    driver = TestDriver(_carts(fail_timer=1, retry=RetryPolicy(attempts=3, backoff=5, jitter=0)))
    driver.send("items", {"cart": "c1", "sku": "a"}, key="c1", timestamp=T0)
    driver.advance(30 * 60, clock="wall")
    assert driver.state("cart", "c1") == {"items": 1}  # failed: unchanged
    driver.advance(5, clock="wall")
    assert driver.state("cart", "c1")["abandoned"] is True
    assert driver.dead_letters() == []


def test_a_processor_that_fails_after_setting_a_timer_leaves_no_timer() -> None:
    app = App("t")
    app.topic("in")
    app.topic("out")

    @app.processor(input="in", output="out", on_timer=lambda timer: {"fired": timer.key})
    def schedule_then_fail(event: dict[str, Any], ctx: Context) -> None:
        assert ctx.timers is not None
        ctx.timers.schedule(after=60)  # the record key
        if event.get("fail"):
            raise ValueError("after scheduling")

    driver = TestDriver(app)
    driver.send("in", {"fail": True}, key="k1", timestamp=T0)
    driver.send("in", {}, key="k2", timestamp=T0)
    driver.advance(61, clock="wall")
    assert driver.values("out") == [{"fired": "k2"}]


@pytest.mark.parametrize(
    ("fold", "on_timer", "message"),
    [
        (lambda s, e: s, lambda s, t: s, "takes no ctx to set timers with"),
        (lambda s, e, c: s, lambda t: t, "on_timer must take"),
        (lambda e: e, None, "must take \\(state, event\\) or \\(state, event, ctx\\)"),
    ],
)
def test_aggregate_declarations_are_checked(fold: Any, on_timer: Any, message: str) -> None:
    app = App("t")
    app.topic("in")
    with pytest.raises(ConfigError, match=message):
        app.aggregate(input="in", store="s", on_timer=on_timer)(fold)
