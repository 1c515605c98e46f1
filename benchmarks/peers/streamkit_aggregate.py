"""streamkit's keyed sum for the aggregate benchmark: per user (the record key), the count
and the sum of the amounts, in a store (``BENCH_STORE``: memory or rocksdb) with a
changelog, every new state to the output (the projection)."""

import os
from typing import Any

from streamkit import App

PARTITIONS = int(os.environ.get("BENCH_PARTITIONS", "4"))
app = App(os.environ.get("BENCH_GROUP", "bench-aggregate"), dead_letters=False)
INPUT = app.topic(os.environ.get("BENCH_INPUT", "bench-agg-in"), partitions=PARTITIONS)
OUTPUT = app.topic(os.environ.get("BENCH_OUTPUT", "bench-agg-out"), partitions=PARTITIONS)


@app.aggregate(
    input=INPUT, store="sums", output=OUTPUT, store_kind=os.environ.get("BENCH_STORE", "memory")
)
def total(state: dict[str, Any] | None, event: dict[str, Any]) -> dict[str, Any]:
    """Count and sum per user."""
    state = state or {"n": 0, "sum": 0}
    return {"n": state["n"] + 1, "sum": state["sum"] + event["amount"]}
