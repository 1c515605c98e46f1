"""A test app of change data capture (the shop database of deploy/connect/shop.sql):

* ``changes`` writes every change it is handed, as it saw it (op, key, rows, lsn);
* ``products-view`` is a read model in a store: the current row per product (a delete, or
  its tombstone, removes it), projected to the view topic;
* ``reserve`` reads the outbox's orders, with the product from a table of the changes.

CDC_TAG names the topics (the connector's ``topic.prefix`` is ``cdc-<tag>``) and the
group; CDC_EOS=1 runs it exactly once.
"""

import os
from pathlib import Path
from typing import Any

from streamkit import App, Change, Dedupe

TAG = os.environ.get("CDC_TAG", "t")
PREFIX = f"cdc-{TAG}"
SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"

GUARANTEE = "exactly_once" if os.environ.get("CDC_EOS") == "1" else "at_least_once"
app = App(f"cdc-app-{TAG}", schemas=SCHEMAS, guarantee=GUARANTEE)
PRODUCTS = app.topic(f"{PREFIX}.public.products", value="debezium", key="debezium", partitions=2)
ORDERS = app.topic(f"{PREFIX}.events.order", value="json:ShopOrderPlaced", key="json", partitions=2)
CHANGES = app.topic(f"{PREFIX}.seen", partitions=2)
VIEW = app.topic(f"{PREFIX}.view", partitions=2, config={"cleanup.policy": "compact"})
RESERVED = app.topic(f"{PREFIX}.reserved", partitions=2)

products = app.table("products", topic=PRODUCTS, global_=True)


@app.processor(input=PRODUCTS, output=CHANGES)
def changes(change: Change) -> dict[str, Any]:
    """Every change as this processor was handed it."""
    return {
        "op": change.op,
        "key": change.key,
        "before": change.before,
        "after": change.after,
        "lsn": change.lsn,
        "table": change.table,
        "tx": change.tx_id,
    }


@app.aggregate(input=PRODUCTS, store="products-view", output=VIEW)
def products_view(row: dict[str, Any] | None, change: Change) -> dict[str, Any] | None:
    """The current row of each product (None: deleted)."""
    return None if change.is_delete else change.after


@app.processor(
    input=ORDERS,
    output=RESERVED,
    dedupe=Dedupe(header="id", window="1d"),
    tables=[products.left(on="product_id")],
)
def reserve(order: dict[str, Any], product: dict[str, Any] | None) -> dict[str, Any]:
    """An order with the product's name as the table has it now."""
    return {**order, "product": None if product is None else product["name"]}
