"""A test app with one aggregate: per-customer order count and total.

TOTALS_INPUT, TOTALS_OUTPUT, TOTALS_GROUP, TOTALS_PARTITIONS name things;
TOTALS_STORE=memory|rocksdb picks the store; TOTALS_DELAY_MS slows each fold;
TOTALS_EOS=1 runs it exactly once.
"""

import os
import time
from typing import Any

from streamkit import App

INPUT = os.environ.get("TOTALS_INPUT", "totals-in")
OUTPUT = os.environ.get("TOTALS_OUTPUT", "totals-out")
PARTITIONS = int(os.environ.get("TOTALS_PARTITIONS", "4"))
DELAY = float(os.environ.get("TOTALS_DELAY_MS", "0")) / 1000

app = App(
    os.environ.get("TOTALS_GROUP", "totals"),
    dead_letters=False,
    guarantee="exactly_once" if os.environ.get("TOTALS_EOS") == "1" else "at_least_once",
)
app.topic(INPUT, partitions=PARTITIONS, keyed_by="customer")
app.topic(OUTPUT, partitions=PARTITIONS)


def fold(state: dict[str, Any] | None, order: dict[str, Any]) -> dict[str, Any] | None:
    """Count and sum a customer's orders; a "close" event deletes the customer."""
    if order.get("close"):
        return None
    state = state or {"orders": 0, "spent": 0, "last": -1}
    return {
        "orders": state["orders"] + 1,
        "spent": state["spent"] + order["amount"],
        "last": order["n"],
    }


@app.aggregate(
    input=INPUT,
    store="totals",
    key="customer",
    output=OUTPUT,
    store_kind=os.environ.get("TOTALS_STORE", "memory"),
)
def customer_totals(state: dict[str, Any] | None, order: dict[str, Any]) -> dict[str, Any] | None:
    """The fold, slowed down when a test needs time to act mid-stream."""
    if DELAY:
        time.sleep(DELAY)
    return fold(state, order)
