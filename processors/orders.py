"""The orders example: validate placed orders, then fan out to shipping and billing.

    orders.placed ──validate──▶ orders.validated ──fulfil──▶ orders.shipments
                        │                        │      └──▶ orders.invoices
                        └──▶ orders.rejected     └─large_orders─▶ orders.large (filter)

Run it: ``streamkit topics create processors.orders`` then
``streamkit run processors.orders --workers 2``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from streamkit import App, Emit

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
LARGE_ORDER_CENTS = 50_000

app = App("orders", schemas=SCHEMAS)

PLACED = app.topic("orders.placed", value="OrderPlaced", partitions=4)
VALIDATED = app.topic("orders.validated", value="OrderValidated", partitions=4)
REJECTED = app.topic("orders.rejected", value="OrderRejected", partitions=4)
SHIPMENTS = app.topic("orders.shipments", value="ShipmentRequested", partitions=4)
INVOICES = app.topic("orders.invoices", value="InvoiceIssued", partitions=4)
LARGE = app.topic("orders.large", value="OrderValidated", partitions=4)


def _rejection(order: dict[str, Any], reason: str) -> Emit:
    return Emit(
        REJECTED.name,
        {"order_id": order["order_id"], "customer_id": order["customer_id"], "reason": reason},
    )


@app.processor(input=PLACED, output=VALIDATED, outputs=[REJECTED])
def validate(order: dict[str, Any]) -> dict[str, Any] | Emit:
    """A placed order becomes validated (with its total), or rejected with a reason."""
    lines = order["lines"]
    if not lines:
        return _rejection(order, "no order lines")
    if any(line["quantity"] <= 0 for line in lines):
        return _rejection(order, "a line has a non-positive quantity")
    total = sum(line["quantity"] * line["unit_price_cents"] for line in lines)
    if total <= 0:
        return _rejection(order, "total must be positive")
    return {
        "order_id": order["order_id"],
        "customer_id": order["customer_id"],
        "country": order["country"],
        "item_count": sum(line["quantity"] for line in lines),
        "total_cents": total,
        "channel": order["channel"],
        "placed_at": order["placed_at"],
    }


@app.processor(input=VALIDATED, outputs=[SHIPMENTS, INVOICES])
def fulfil(order: dict[str, Any]) -> list[Emit]:
    """Every validated order is shipped and invoiced: a fan-out to two topics."""
    return [
        Emit(
            SHIPMENTS.name,
            {
                "order_id": order["order_id"],
                "country": order["country"],
                "item_count": order["item_count"],
            },
        ),
        Emit(
            INVOICES.name,
            {
                "order_id": order["order_id"],
                "customer_id": order["customer_id"],
                "amount_cents": order["total_cents"],
            },
        ),
    ]


@app.processor(input=VALIDATED, output=LARGE)
def large_orders(order: dict[str, Any]) -> dict[str, Any] | None:
    """Only orders of at least 500.00 pass: a filter."""
    return order if order["total_cents"] >= LARGE_ORDER_CENTS else None
