"""A test app whose processor has a side effect (a line in PAYMENTS_LOG) and dedupes by id.

PAYMENTS_INPUT, PAYMENTS_OUTPUT, PAYMENTS_GROUP name things.
"""

import os
from typing import Any

from streamkit import App
from streamkit.state.dedupe import Dedupe

INPUT = os.environ.get("PAYMENTS_INPUT", "payments")
OUTPUT = os.environ.get("PAYMENTS_OUTPUT", "receipts")

app = App(os.environ.get("PAYMENTS_GROUP", "payments"), dead_letters=False)
app.topic(INPUT, partitions=3)
app.topic(OUTPUT, partitions=3)


@app.processor(input=INPUT, output=OUTPUT, dedupe=Dedupe(field="id", window="1h"))
def charge(payment: dict[str, Any]) -> dict[str, Any]:
    """Charge once: the side effect is a line in the log file."""
    with open(os.environ["PAYMENTS_LOG"], "a") as log:
        log.write(f"{payment['id']}\n")
    return {"id": payment["id"], "charged": True}
