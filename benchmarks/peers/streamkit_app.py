"""(b, c) The same work as a streamkit processor: run with `streamkit run ... --workers N`.

Env: BENCH_INPUT, BENCH_OUTPUT, BENCH_GROUP, BENCH_PARTITIONS.
"""

import os
from typing import Any

from benchmarks.peers.work import SCHEMAS, transform
from streamkit import App

app = App(os.environ.get("BENCH_GROUP", "bench"), schemas=SCHEMAS, dead_letters=False)
INPUT = app.topic(os.environ.get("BENCH_INPUT", "bench-in"), value="BenchEvent")
OUTPUT = app.topic(os.environ.get("BENCH_OUTPUT", "bench-out"), value="BenchResult")


@app.processor(input=INPUT, output=OUTPUT)
def bench(event: dict[str, Any]) -> dict[str, Any]:
    """BenchEvent -> BenchResult."""
    return transform(event)
