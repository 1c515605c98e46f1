"""The receipts and thumbnails examples, in milliseconds with the TestDriver."""

from processors import receipts, thumbnails
from streamkit.testing import TestDriver


def test_a_receipt_is_sent_for_each_invoice_with_the_mail_apis_id() -> None:
    driver = TestDriver(receipts.app)
    driver.send("orders.invoices", {"order_id": "o-1", "customer_id": "c-1", "amount_cents": 1250})
    (receipt,) = driver.values("receipts.sent")
    assert receipt["order_id"] == "o-1"
    assert receipt["amount_cents"] == 1250
    assert len(receipt["message_id"]) == 16


def test_a_thumbnail_is_rendered_and_an_impossible_image_is_dead_lettered() -> None:
    driver = TestDriver(thumbnails.app)
    driver.send("thumbnails.requested", {"image_id": "i-1", "width": 400, "height": 300})
    driver.send("thumbnails.requested", {"image_id": "i-2", "width": 0, "height": 300})
    (rendered,) = driver.values("thumbnails.rendered")
    assert rendered == {"image_id": "i-1", "url": "https://thumbs.invalid/i-1.webp", "bytes": 3000}
    (dead,) = driver.dead_letters("thumbnails.requested")
    assert dead.error["attempts"] == "3"  # retries=2: the third delivery gives up
    assert dead.error["exception.message"] == "image i-2 is 0x300"
