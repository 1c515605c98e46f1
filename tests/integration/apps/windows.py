"""A test app with a window and timers: views counted per page per minute of event time
(tumbling, grace 5 s, closed after 2 s idle too), a reminder a few seconds after each
order (a processor's wall-clock timer), and each order's state marked expired as long
after (an aggregate's).

WIN_GROUP, WIN_VIEWS, WIN_COUNTS, WIN_ORDERS, WIN_REMINDERS, WIN_OPEN, WIN_PARTITIONS name
things;
WIN_EOS=1 runs it exactly once; WIN_DELAY_MS slows each fold; WIN_IDLE_S is close_idle
(default 2); WIN_TIMER_S is the reminder's delay.
"""

import os
import time
from typing import Any

from streamkit import App, Context, Timer

PARTITIONS = int(os.environ.get("WIN_PARTITIONS", "3"))
DELAY = float(os.environ.get("WIN_DELAY_MS", "0")) / 1000

app = App(
    os.environ.get("WIN_GROUP", "windows"),
    guarantee="exactly_once" if os.environ.get("WIN_EOS") == "1" else "at_least_once",
)
VIEWS = app.topic(os.environ.get("WIN_VIEWS", "win-views"), partitions=PARTITIONS, keyed_by="page")
COUNTS = app.topic(os.environ.get("WIN_COUNTS", "win-counts"), partitions=PARTITIONS)
ORDERS = app.topic(os.environ.get("WIN_ORDERS", "win-orders"), partitions=PARTITIONS, keyed_by="id")
REMINDERS = app.topic(os.environ.get("WIN_REMINDERS", "win-reminders"), partitions=PARTITIONS)
OPEN = app.topic(os.environ.get("WIN_OPEN", "win-open"), partitions=PARTITIONS)
TIMER_S = float(os.environ.get("WIN_TIMER_S", "3"))


@app.window(
    input=VIEWS,
    store="per-minute",
    key="page",
    size="1m",
    grace="5s",
    close_idle=float(os.environ.get("WIN_IDLE_S", "2")),
    output=COUNTS,
)
def count(views: int | None, view: dict[str, Any]) -> int:
    """Views per page per minute."""
    if DELAY:
        time.sleep(DELAY)
    return (views or 0) + 1


def remind(timer: Timer) -> dict[str, Any]:
    """The reminder, with the order it is about."""
    return {"order": timer.key, "n": timer.data}


@app.processor(input=ORDERS, output=REMINDERS, on_timer=remind)
def placed(order: dict[str, Any], ctx: Context) -> None:
    """Remind of each order a few seconds later."""
    assert ctx.timers is not None
    ctx.timers.schedule(order["id"], after=TIMER_S, data=order["n"])


def expire(order: dict[str, Any] | None, timer: Timer) -> dict[str, Any]:
    """An order not paid in time: expired."""
    return {**(order or {}), "expired": True}


@app.aggregate(input=ORDERS, store="open-orders", key="id", output=OPEN, on_timer=expire)
def opened(order: dict[str, Any] | None, placed: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """Each order's state, expired a few seconds later."""
    assert ctx.timers is not None
    ctx.timers.schedule(after=TIMER_S)
    return {"n": placed["n"], "expired": False}
