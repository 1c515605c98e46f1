"""The checkout example: every validated order is checked three ways, then decided once.

    orders.validated ──check_payment──▶ checkout.payment ─┐
                     ──check_stock────▶ checkout.stock ───┼─decide─▶ orders.decisions
                     ──check_fraud────▶ checkout.fraud ───┘  (all three, or 30 s)
                            ▲
    customers.profiles ─────┘ (a table: the customer's risk, looked up per order)

A fan-out (three processors on one input) and a fan-in (a gather by order id, with a
durable timeout); ``check_fraud`` enriches the order from the customers table, which is
co-partitioned with ``orders.validated`` (both keyed by customer id). This is a separate
app (its own consumer group) beside ``processors.orders``, which writes
``orders.validated``.

Run it: ``streamkit topics create processors.checkout`` then
``streamkit run processors.checkout``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from streamkit import App

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
PAYMENT_LIMIT_CENTS = 150_000
STOCK_LIMIT_ITEMS = 15
RISK_LIMIT = 80

app = App("checkout", schemas=SCHEMAS)

VALIDATED = app.topic("orders.validated", value="OrderValidated", partitions=4)
PROFILES = app.topic(
    "customers.profiles",
    value="CustomerProfile",
    partitions=4,
    keyed_by="customer_id",
    config={"cleanup.policy": "compact"},
)
PAYMENT = app.topic("checkout.payment", value="CheckResult", partitions=4)
STOCK = app.topic("checkout.stock", value="CheckResult", partitions=4)
FRAUD = app.topic("checkout.fraud", value="CheckResult", partitions=4)
DECISIONS = app.topic("orders.decisions", value="OrderDecision", partitions=4)

customers = app.table("customers", topic=PROFILES, key="customer_id")


def _result(order: dict[str, Any], check: str, reason: str | None) -> dict[str, Any]:
    return {"order_id": order["order_id"], "check": check, "ok": reason is None, "reason": reason}


@app.processor(input=VALIDATED, output=PAYMENT)
def check_payment(order: dict[str, Any]) -> dict[str, Any]:
    """The payment check: orders above the card limit are refused."""
    over = order["total_cents"] > PAYMENT_LIMIT_CENTS
    return _result(order, "payment", "over the card limit" if over else None)


@app.processor(input=VALIDATED, output=STOCK)
def check_stock(order: dict[str, Any]) -> dict[str, Any]:
    """The stock check: more items than the warehouse holds are refused."""
    over = order["item_count"] > STOCK_LIMIT_ITEMS
    return _result(order, "stock", "not enough stock" if over else None)


@app.processor(input=VALIDATED, output=FRAUD, tables=[customers.left(on="customer_id")])
def check_fraud(order: dict[str, Any], customer: dict[str, Any] | None) -> dict[str, Any]:
    """The fraud check, enriched from the customers table: unknown customers and risky
    ones are refused."""
    if customer is None:
        return _result(order, "fraud", "unknown customer")
    if customer["risk"] >= RISK_LIMIT:
        return _result(order, "fraud", "high fraud risk")
    return _result(order, "fraud", None)


@app.gather(inputs=[PAYMENT, STOCK, FRAUD], correlate="order_id", output=DECISIONS, timeout="30s")
def decide(checks: dict[str, dict[str, Any]], complete: bool) -> dict[str, Any]:
    """One decision per order once the three checks answered (or at the timeout, with
    what answered: not approved)."""
    order_id = next(iter(checks.values()))["order_id"]
    reasons = [c["reason"] for c in checks.values() if not c["ok"]]
    if not complete:
        answered = {c["check"] for c in checks.values()}
        reasons += [
            f"no {name} answer" for name in ("payment", "stock", "fraud") if name not in answered
        ]
    return {
        "order_id": order_id,
        "approved": complete and not reasons,
        "complete": complete,
        "reasons": sorted(reasons),
    }
