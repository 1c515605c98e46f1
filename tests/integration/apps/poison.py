"""A test app with every kind of failure, chosen by the input's ``kind`` field.

good           doubled to the output
reject         ValueError, never retried: dead-lettered at once
flaky_forever  ConnectionError every time: retried (blocking), then dead-lettered
flaky_twice    fails twice, then succeeds; the output's note lists the call times
bad_output     returns a value that breaks the Result contract (encode failure)
huge           returns an output larger than Kafka accepts (1.2 MB)
fixable        fails unless POISON_FIXED=1 (for redrive)

Topic names come from POISON_INPUT / POISON_OUTPUT; the group from POISON_GROUP.
"""

import os
import time
from pathlib import Path
from typing import Any

import orjson

from streamkit import App
from streamkit.failures import RetryPolicy

INPUT = os.environ.get("POISON_INPUT", "poison-in")
OUTPUT = os.environ.get("POISON_OUTPUT", "poison-out")
PARTITIONS = int(os.environ.get("POISON_PARTITIONS", "3"))

app = App(
    os.environ.get("POISON_GROUP", "poison"),
    schemas=Path(__file__).parent / "schemas",
    max_redrives=int(os.environ.get("POISON_MAX_REDRIVES", "1")),
)
app.topic(INPUT, value="Reading", partitions=PARTITIONS)
app.topic(OUTPUT, value="Result", partitions=PARTITIONS)

_calls: dict[int, list[float]] = {}


@app.processor(
    input=INPUT,
    output=OUTPUT,
    retries=RetryPolicy(attempts=3, backoff=0.3, jitter=0.1, give_up_on=(ValueError,)),
)
def double(reading: dict[str, Any]) -> dict[str, Any]:
    """Double the value, failing as the reading's kind says."""
    kind, ident = reading["kind"], reading["id"]
    calls = _calls.setdefault(ident, [])
    calls.append(time.monotonic())
    if kind == "reject":
        raise ValueError(f"reading {ident} is rejected")
    if kind == "flaky_forever":
        raise ConnectionError(f"downstream unavailable for {ident}")
    if kind == "flaky_twice" and len(calls) < 3:
        raise ConnectionError(f"try again ({len(calls)})")
    if kind == "fixable" and os.environ.get("POISON_FIXED") != "1":
        raise ValueError(f"bug for {ident}")
    if kind == "bad_output":
        return {"id": ident, "doubled": "not a number"}
    note = orjson.dumps(calls).decode() if kind == "flaky_twice" else ""
    if kind == "huge":  # larger than the producer's message.max.bytes (1 MB)
        note = os.urandom(600_000).hex()
    return {"id": ident, "doubled": reading["value"] * 2, "note": note}
