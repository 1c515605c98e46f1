"""A test app: echoes each input's coordinates, so tests can account for every record.

Topic names and behaviour come from the environment the test sets for the workers:
ECHO_INPUT, ECHO_OUTPUT, ECHO_GROUP, ECHO_PARTITIONS, ECHO_DELAY_MS, ECHO_POISON_N,
ECHO_DLQ (1: dead letters on), ECHO_PID (0: leave the pid out, for byte-identical replays).
"""

import os
import time
from typing import Any

from streamkit import App, Context

INPUT = os.environ.get("ECHO_INPUT", "echo-in")
OUTPUT = os.environ.get("ECHO_OUTPUT", "echo-out")
DELAY = float(os.environ.get("ECHO_DELAY_MS", "0")) / 1000
POISON = int(os.environ.get("ECHO_POISON_N", "-1"))

app = App(os.environ.get("ECHO_GROUP", "echo"), dead_letters=os.environ.get("ECHO_DLQ") == "1")
app.topic(INPUT, partitions=int(os.environ.get("ECHO_PARTITIONS", "1")))
app.topic(OUTPUT, partitions=int(os.environ.get("ECHO_PARTITIONS", "1")))


@app.processor(input=INPUT, output=OUTPUT)
def echo(event: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """Say where the event came from."""
    if event["n"] == POISON:
        raise ValueError(f"poison event {event['n']}")
    if DELAY:
        time.sleep(DELAY)
    pid = os.getpid() if os.environ.get("ECHO_PID", "1") == "1" else 0
    return {"n": event["n"], "p": ctx.partition, "o": ctx.offset, "pid": pid}
