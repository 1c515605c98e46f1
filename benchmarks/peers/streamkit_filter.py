"""The filter benchmark's app: the map of the main benchmark for the 1% of BenchEvents whose
``type`` header is ``wanted``; BENCH_FILTER says where the filter is: ``headers``
(``where_headers=``, checked before decoding) or ``function`` (the function reads the header
from its context and returns None, after the record was decoded). Env: BENCH_INPUT,
BENCH_OUTPUT, BENCH_GROUP, BENCH_FILTER.
"""

import os
from typing import Any

from benchmarks.peers.work import SCHEMAS, transform
from streamkit import App, Context

app = App(os.environ.get("BENCH_GROUP", "bench-filter"), schemas=SCHEMAS, dead_letters=False)
INPUT = app.topic(os.environ.get("BENCH_INPUT", "bench-in"), value="BenchEvent")
OUTPUT = app.topic(os.environ.get("BENCH_OUTPUT", "bench-out"), value="BenchResult")

if os.environ.get("BENCH_FILTER", "headers") == "headers":

    @app.processor(input=INPUT, output=OUTPUT, where_headers={"type": ["wanted"]})
    def wanted(event: dict[str, Any]) -> dict[str, Any]:
        """BenchEvent -> BenchResult, for the records the pattern lets through."""
        return transform(event)

else:

    @app.processor(input=INPUT, output=OUTPUT)
    def wanted_in_function(event: dict[str, Any], ctx: Context) -> dict[str, Any] | None:
        """The same filter written in the function."""
        return transform(event) if ctx.header("type") == b"wanted" else None
