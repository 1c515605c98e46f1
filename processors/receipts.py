"""The receipts example: email a receipt for every invoice, through a slow mail API.

    orders.invoices ──send_receipt──▶ receipts.sent

Each send waits about 5 ms on the mail API (simulated here), so one worker sends some
200 receipts a second and a burst of invoices builds a lag that more workers absorb. Run
it scaled with the lag, down to zero when there is nothing to send::

    streamkit topics create processors.receipts
    streamkit run processors.receipts --autoscale 0..4 --lag-per-worker 500

``make demo-elastic`` sends bursts of invoices to it and draws the workers following them.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

from streamkit import App

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
MAIL_API_SECONDS = float(os.environ.get("RECEIPTS_MAIL_API_MS", "5")) / 1000

app = App("receipts", schemas=SCHEMAS)

INVOICES = app.topic("orders.invoices", value="InvoiceIssued", partitions=4)
SENT = app.topic("receipts.sent", value="ReceiptSent", partitions=4)


def mail_api_send(to: str, body: str) -> str:
    """A stand-in for your mail provider's client: one network round trip, an id back."""
    time.sleep(MAIL_API_SECONDS)
    return hashlib.sha1(f"{to}:{body}".encode()).hexdigest()[:16]  # noqa: S324 - an id


@app.processor(input=INVOICES, output=SENT, retries=3)
def send_receipt(invoice: dict[str, Any]) -> dict[str, Any]:
    """Email the customer a receipt for ``invoice``."""
    amount = invoice["amount_cents"] / 100
    message_id = mail_api_send(
        invoice["customer_id"], f"Order {invoice['order_id']}: {amount:.2f} received, thank you."
    )
    return {
        "order_id": invoice["order_id"],
        "customer_id": invoice["customer_id"],
        "amount_cents": invoice["amount_cents"],
        "message_id": message_id,
    }
