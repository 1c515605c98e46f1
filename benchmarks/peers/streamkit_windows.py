"""(w-b) The windowed count in streamkit: BenchEvents counted per user per 1-minute
tumbling window of the record timestamp, no grace, one final result per window (its
default memory store, or with BENCH_STORE=rocksdb its RocksDB store, the kind Quix Streams
and Kafka Streams use by default; with a changelog either way). Env: BENCH_INPUT,
BENCH_OUTPUT, BENCH_GROUP, BENCH_PARTITIONS, BENCH_STORE.
"""

import os
from typing import Any

from benchmarks.peers.work import SCHEMAS
from streamkit import App

PARTITIONS = int(os.environ.get("BENCH_PARTITIONS", "8"))
app = App(os.environ.get("BENCH_GROUP", "bench-windows"), schemas=SCHEMAS, dead_letters=False)
INPUT = app.topic(
    os.environ.get("BENCH_INPUT", "bench-in"), value="BenchEvent", partitions=PARTITIONS
)
OUTPUT = app.topic(os.environ.get("BENCH_OUTPUT", "bench-out"), value="json", partitions=PARTITIONS)


@app.window(
    input=INPUT,
    store="per-user",
    size="1m",
    output=OUTPUT,
    store_kind=os.environ.get("BENCH_STORE", "memory"),
)
def count(state: int | None, event: dict[str, Any]) -> int:
    """Events per user (the record key) per minute."""
    return (state or 0) + 1
