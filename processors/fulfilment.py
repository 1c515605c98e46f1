"""The fulfilment example: a durable workflow (a saga) per order.

    fulfilment.orders ─▶ reserve_stock ─▶ approval* ─▶ charge_payment ─▶ ship ─▶ completed
                              │             │ no answer in 30 s            │ declined
                              │             ▼                              ▼
                              │          escalate ─▶ manager_approval   release_stock
                              │                      (no answer: compensate)  ─▶ compensated
                              ▼ out of stock: failed (nothing to undo)

    * only orders of 1,000.00 or more wait for an approval (fulfilment.approvals)

Each step is a function; its side effects are emits to the fulfilment.stock,
.payments, .shipments and .escalations topics, written with the instance's state (once,
under ``exactly_once``). When a step gives up (a declined card, a rejected approval, no
answer from the manager), the completed steps are compensated in reverse order: here the
stock reservation is released. Every instance ends once in fulfilment.done.

Run it: ``streamkit topics create processors.fulfilment`` then
``streamkit run processors.fulfilment``; see its instances with
``streamkit workflow list --app processors.fulfilment``.
"""

from __future__ import annotations

import os
from typing import Any

from streamkit import App, StepContext, StepFailed

LARGE_ORDER_CENTS = 100_000
STOCK_PER_ORDER = 50
APPROVAL_TIMEOUT = os.environ.get("FULFILMENT_APPROVAL_TIMEOUT", "30s")

app = App("fulfilment", guarantee="exactly_once")

ORDERS = app.topic("fulfilment.orders", partitions=4, keyed_by="order_id")
APPROVALS = app.topic("fulfilment.approvals", partitions=4, keyed_by="order_id")
STOCK = app.topic("fulfilment.stock", partitions=4)
PAYMENTS = app.topic("fulfilment.payments", partitions=4)
SHIPMENTS = app.topic("fulfilment.shipments", partitions=4)
ESCALATIONS = app.topic("fulfilment.escalations", partitions=4)
DONE = app.topic("fulfilment.done", partitions=4)

flow = app.workflow(
    "fulfilment",
    start=ORDERS,
    id="order_id",
    events=[APPROVALS],
    output=DONE,
    outputs=[STOCK, PAYMENTS, SHIPMENTS, ESCALATIONS],
    retries=2,
)


def is_large(order: dict[str, Any]) -> bool:
    """Whether an order waits for an approval."""
    return bool(order["total_cents"] >= LARGE_ORDER_CENTS)


def release_stock(order: dict[str, Any], ctx: StepContext) -> None:
    """Undo ``reserve_stock``: give the reserved items back."""
    ctx.emit(
        STOCK,
        {
            "order_id": order["order_id"],
            "sku": order["sku"],
            "quantity": order["quantity"],
            "action": "release",
        },
    )


@flow.step(compensate=release_stock)
def reserve_stock(order: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Reserve the order's items (an order of more than 50 items is out of stock)."""
    if order["quantity"] > STOCK_PER_ORDER:
        raise StepFailed(f"out of stock: {order['quantity']} x {order['sku']}")
    ctx.emit(
        STOCK,
        {
            "order_id": order["order_id"],
            "sku": order["sku"],
            "quantity": order["quantity"],
            "action": "reserve",
        },
    )
    return order


def _approved(order: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    if not answer["approved"]:
        raise StepFailed(f"rejected by {answer['by']}")
    return {**order, "approved_by": answer["by"]}


@flow.wait(
    APPROVALS, timeout=APPROVAL_TIMEOUT, on_timeout="escalate", when=is_large, next="charge_payment"
)
def approval(order: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    """A large order waits for an approval; none in time: escalate."""
    return _approved(order, answer)


@flow.step(next="manager_approval")
def escalate(order: dict[str, Any], ctx: StepContext) -> None:
    """Ask a manager (the order goes on as it was)."""
    ctx.emit(
        ESCALATIONS,
        {
            "order_id": order["order_id"],
            "total_cents": order["total_cents"],
            "waited": APPROVAL_TIMEOUT,
        },
    )


@flow.wait(APPROVALS, timeout=APPROVAL_TIMEOUT, on_timeout="compensate", next="charge_payment")
def manager_approval(order: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    """The manager's answer; none in time either: the order is given up."""
    return _approved(order, answer)


@flow.step()
def charge_payment(order: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Charge the card (the payment service dedupes by the idempotency key)."""
    if order["card"] == "declined":
        raise StepFailed("card declined")
    ctx.emit(
        PAYMENTS,
        {
            "order_id": order["order_id"],
            "amount_cents": order["total_cents"],
            "idempotency_key": ctx.idempotency_key,
        },
    )
    return {**order, "charged_cents": order["total_cents"]}


@flow.step()
def ship(order: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Hand the order to shipping; the workflow's result."""
    ctx.emit(
        SHIPMENTS,
        {"order_id": order["order_id"], "sku": order["sku"], "quantity": order["quantity"]},
    )
    return {"order_id": order["order_id"], "charged_cents": order["charged_cents"]}
