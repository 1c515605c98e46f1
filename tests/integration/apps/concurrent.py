"""A test app for concurrent processors: echoes each input with where it came from, after
a random wait (up to CONC_MAX_DELAY_MS), ``CONC_WIDTH`` records at once.

Topic names come from CONC_INPUT, CONC_OUTPUT, CONC_GROUP and CONC_PARTITIONS.
"""

import asyncio
import os
import random
from typing import Any

from streamkit import App, Context

INPUT = os.environ.get("CONC_INPUT", "conc-in")
OUTPUT = os.environ.get("CONC_OUTPUT", "conc-out")
MAX_DELAY = float(os.environ.get("CONC_MAX_DELAY_MS", "20")) / 1000

app = App(os.environ.get("CONC_GROUP", "conc"))
app.topic(INPUT, partitions=int(os.environ.get("CONC_PARTITIONS", "1")))
app.topic(OUTPUT, partitions=int(os.environ.get("CONC_PARTITIONS", "1")))


@app.processor(input=INPUT, output=OUTPUT, concurrency=int(os.environ.get("CONC_WIDTH", "100")))
async def echo(event: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """Wait like a call to another service would, then say where the event came from."""
    await asyncio.sleep(random.random() * MAX_DELAY)
    return {**event, "p": ctx.partition, "o": ctx.offset, "pid": os.getpid()}
