"""The CDC example: a product catalog kept from PostgreSQL's changes, and orders published
through the shop's transactional outbox.

    postgres products ──Debezium──▶ shop.public.products ──catalog──▶ inventory.catalog
                                      (changes, tombstones)      └──▶ inventory.invalidations
    postgres outbox ──outbox router──▶ shop.events.order ──reserve──▶ inventory.reservations
                                        (ShopOrderPlaced)    ▲
                        the products table (current row per id)

``catalog`` keeps a read model, the current row of every product (a delete becomes a
tombstone, so the compacted topic forgets it), and tells caches which keys changed.
``reserve`` reads the orders the shop wrote to its ``outbox`` table in the same
transaction as the order itself: an order rolled back never shows up; each one that
committed is reserved once (its outbox id is the dedupe key).

Run it: ``make demo-cdc``, or by hand: ``streamkit postgres start``, the tables of
``deploy/connect/shop.sql``, ``streamkit topics create processors.inventory``,
``streamkit connect start deploy/connect/shop.properties``, then
``streamkit run processors.inventory``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from streamkit import App, Change, Dedupe, Emit

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"

app = App("inventory", schemas=SCHEMAS, guarantee="exactly_once")

PRODUCTS = app.topic("shop.public.products", value="debezium", key="debezium", partitions=1)
CATALOG = app.topic("inventory.catalog", partitions=1, config={"cleanup.policy": "compact"})
INVALIDATIONS = app.topic("inventory.invalidations", partitions=1)
ORDERS = app.topic("shop.events.order", value="json:ShopOrderPlaced", key="json", partitions=1)
RESERVATIONS = app.topic("inventory.reservations", partitions=1)

products = app.table("products", topic=PRODUCTS, global_=True)


@app.processor(input=PRODUCTS, outputs=[CATALOG, INVALIDATIONS])
def catalog(change: Change) -> list[Emit]:
    """The current row of each product to the catalog; changed keys to the caches."""
    key = str(change.key)
    if change.is_tombstone:  # forwarded as a tombstone: compaction forgets the product
        return [Emit(CATALOG.name, None, key=key)]
    found: list[Emit] = []
    if change.op in {"update", "delete"}:
        found.append(
            Emit(
                INVALIDATIONS.name,
                {"key": f"product:{key}", "op": change.op, "lsn": change.lsn},
                key=key,
            )
        )
    if change.after is not None:
        found.append(Emit(CATALOG.name, {**change.after, "lsn": change.lsn}, key=key))
    return found


@app.processor(
    input=ORDERS,
    output=RESERVATIONS,
    dedupe=Dedupe(header="id", window="1d"),
    tables=[products.left(on="product_id")],
)
def reserve(order: dict[str, Any], product: dict[str, Any] | None) -> dict[str, Any]:
    """An order from the outbox, with its product as the catalog knows it now."""
    return {
        "order_id": order["order_id"],
        "product_id": order["product_id"],
        "quantity": order["quantity"],
        "product": None if product is None else product["name"],
    }
