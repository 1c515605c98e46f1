"""(c) The I/O-bound handler in streamkit: an ``async def`` that awaits 20 ms per record (a
call to another service), BENCH_CONCURRENCY records at once in key order, the event passed
on. Env: BENCH_INPUT, BENCH_OUTPUT, BENCH_GROUP, BENCH_PARTITIONS, BENCH_CONCURRENCY,
BENCH_WAIT_MS. Settings are streamkit's defaults (key ordering, the default pending bound).
"""

import asyncio
import os
from typing import Any

from streamkit import App

PARTITIONS = int(os.environ.get("BENCH_PARTITIONS", "8"))
WAIT = float(os.environ.get("BENCH_WAIT_MS", "20")) / 1000
app = App(os.environ.get("BENCH_GROUP", "bench-async"), dead_letters=False)
INPUT = app.topic(os.environ.get("BENCH_INPUT", "bench-in"), partitions=PARTITIONS)
OUTPUT = app.topic(os.environ.get("BENCH_OUTPUT", "bench-out"), partitions=PARTITIONS)


@app.processor(
    input=INPUT, output=OUTPUT, concurrency=int(os.environ.get("BENCH_CONCURRENCY", "200"))
)
async def call(event: dict[str, Any]) -> dict[str, Any]:
    """Wait as a call to another service would; pass the event on."""
    await asyncio.sleep(WAIT)
    return event
