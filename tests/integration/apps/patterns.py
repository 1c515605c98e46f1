"""A test app of the correlation patterns: a partitioned and a global table, a gather
with a timeout, a windowed join and an aggregate re-keyed by a field.

PAT_TAG suffixes every topic and the group; PAT_EOS=1 runs it exactly once.
"""

import os
from typing import Any

from streamkit import App, Emit

TAG = os.environ.get("PAT_TAG", "t")
PARTITIONS = 3


def name(topic: str) -> str:
    """A topic's name in this run."""
    return f"pat-{topic}-{TAG}"


app = App(
    f"pat-{TAG}", guarantee="exactly_once" if os.environ.get("PAT_EOS") == "1" else "at_least_once"
)
ORDERS = app.topic(name("orders"), partitions=PARTITIONS)  # keyed by order id
CUSTOMERS = app.topic(
    name("customers"), partitions=PARTITIONS, keyed_by="id", config={"cleanup.policy": "compact"}
)
REGIONS = app.topic(name("regions"), partitions=1, config={"cleanup.policy": "compact"})
BY_CUSTOMER = app.topic(name("by-customer"), partitions=PARTITIONS, keyed_by="customer")
PAYMENTS = app.topic(name("payments"), partitions=2)
STOCK = app.topic(name("stock"), partitions=PARTITIONS)
ENRICHED = app.topic(name("enriched"), partitions=PARTITIONS)
DECISIONS = app.topic(name("decisions"), partitions=PARTITIONS)
PAID = app.topic(name("paid"), partitions=PARTITIONS)
TOTALS = app.topic(name("totals"), partitions=PARTITIONS)

customers = app.table("customers", topic=CUSTOMERS, key="id")
regions = app.table("regions", topic=REGIONS, global_=True)


@app.processor(input=ORDERS, output=BY_CUSTOMER)
def by_customer(order: dict[str, Any]) -> Any:
    """Orders are keyed by their id: re-key them by customer, by hand, for the table."""
    return Emit(BY_CUSTOMER.name, order, key=order["customer"])


@app.processor(input=BY_CUSTOMER, output=ENRICHED, tables=[customers.inner(on="customer"), regions])
def enrich(order: dict[str, Any], customer: dict[str, Any], by_region: Any) -> dict[str, Any]:
    """An order with its customer's tier (inner) and region name (global, by hand)."""
    region = by_region.get(customer["region"])
    return {"id": order["id"], "tier": customer["tier"], "region": region and region["name"]}


@app.aggregate(input=ORDERS, store="totals", key="customer", output=TOTALS)
def totals(state: dict[str, Any] | None, order: dict[str, Any]) -> dict[str, Any]:
    """Per customer (orders are keyed by order id: repartitioned automatically)."""
    state = state or {"orders": 0, "spent": 0}
    return {"orders": state["orders"] + 1, "spent": state["spent"] + order["amount"]}


@app.gather(
    inputs=[ORDERS, PAYMENTS, STOCK],
    correlate="id",
    output=DECISIONS,
    timeout=os.environ.get("PAT_TIMEOUT", "4s"),
)
def decide(parts: dict[str, Any], complete: bool) -> dict[str, Any]:
    """One decision per order: all three answered, or what was there at the timeout."""
    order = next(iter(parts.values()))
    return {"id": order["id"], "complete": complete, "parts": sorted(parts)}


@app.join(left=ORDERS, right=PAYMENTS, on="id", within="10m", output=PAID)
def paid(order: dict[str, Any], payment: dict[str, Any]) -> dict[str, Any]:
    """An order and its payment."""
    return {"id": order["id"], "amount": order["amount"], "paid": payment["amount"]}
