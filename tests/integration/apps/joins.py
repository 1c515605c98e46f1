"""A test app of stream-stream joins: orders and payments joined inner, left and outer on
the order's ``key``, within 5 s of event time, with a grace of 5 minutes: longer than the
test's batches span in event time (no record on time is late whatever a kill does to the
routers' order), far shorter than how late the test's late records are.

JOIN_TAG suffixes every topic and the group; JOIN_EOS=1 runs it exactly once.
"""

import os
from typing import Any

from streamkit import App

TAG = os.environ.get("JOIN_TAG", "t")
PARTITIONS = 3


def name(topic: str) -> str:
    """A topic's name in this run."""
    return f"join-{topic}-{TAG}"


app = App(
    f"join-{TAG}",
    guarantee="exactly_once" if os.environ.get("JOIN_EOS") == "1" else "at_least_once",
)
ORDERS = app.topic(name("orders"), partitions=PARTITIONS)
PAYMENTS = app.topic(name("payments"), partitions=2)
OUTPUTS = {how: app.topic(name(how), partitions=PARTITIONS) for how in ("inner", "left", "outer")}


def pair(order: dict[str, Any] | None, payment: dict[str, Any] | None) -> dict[str, Any]:
    """Which order met which payment (None: no partner)."""
    return {"o": order and order["n"], "p": payment and payment["n"]}


for how, output in OUTPUTS.items():
    app.join(
        left=ORDERS,
        right=PAYMENTS,
        on="key",
        within="5s",
        grace="5m",
        how=how,
        output=output,
        name=f"paid-{how}",
    )(pair)
