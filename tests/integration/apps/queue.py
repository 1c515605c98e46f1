"""A test app of one queue processor: echoes each job with the pid that ran it.

From the environment: QUEUE_INPUT, QUEUE_OUTPUT, QUEUE_GROUP, QUEUE_PARTITIONS,
QUEUE_DELAY_MS (work per job), QUEUE_POISON (a job number that always fails).
"""

import os
import time
from typing import Any

from streamkit import App, Context

INPUT = os.environ.get("QUEUE_INPUT", "jobs")
OUTPUT = os.environ.get("QUEUE_OUTPUT", "jobs-done")
DELAY = float(os.environ.get("QUEUE_DELAY_MS", "0")) / 1000
POISON = int(os.environ.get("QUEUE_POISON", "-1"))

app = App(os.environ.get("QUEUE_GROUP", "jobs"))
app.topic(INPUT, partitions=int(os.environ.get("QUEUE_PARTITIONS", "1")))
app.topic(OUTPUT, partitions=1)


@app.processor(input=INPUT, output=OUTPUT, queue=True, retries=2)
def work(job: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """Do the job; job QUEUE_POISON fails on every delivery."""
    if job["n"] == POISON:
        raise ValueError(f"poison job {job['n']}")
    if DELAY:
        time.sleep(DELAY)
    return {"n": job["n"], "pid": os.getpid(), "p": ctx.partition}
