"""Every processor of processors/orders.py, in milliseconds, contracts enforced."""

from pathlib import Path
from typing import Any

import pytest

from processors.generator import orders
from processors.orders import LARGE_ORDER_CENTS, app
from streamkit.contracts import AvroSerde, SchemaRepository
from streamkit.errors import ContractError
from streamkit.testing import TestDriver


def _order(**overrides: Any) -> dict[str, Any]:
    order = {
        "order_id": "o-1",
        "customer_id": "c-1",
        "country": "FR",
        "lines": [
            {"sku": "a", "quantity": 2, "unit_price_cents": 1000},
            {"sku": "b", "quantity": 1, "unit_price_cents": 500},
        ],
        "placed_at": 1_767_225_600_000,
        "channel": "mobile",
    }
    order.update(overrides)
    return order


@pytest.fixture
def driver() -> TestDriver:
    return TestDriver(app)


def test_validate_computes_total_and_item_count(driver: TestDriver) -> None:
    driver.send("orders.placed", _order(), key="c-1")
    (validated,) = driver.records("orders.validated")
    assert validated.key == "c-1"  # the input key is kept
    assert validated.value["total_cents"] == 2500
    assert validated.value["item_count"] == 3
    assert validated.value["channel"] == "mobile"
    assert driver.values("orders.rejected") == []


@pytest.mark.parametrize(
    ("lines", "reason"),
    [
        ([], "no order lines"),
        ([{"sku": "a", "quantity": 0, "unit_price_cents": 100}], "non-positive quantity"),
        ([{"sku": "a", "quantity": 1, "unit_price_cents": 0}], "total must be positive"),
    ],
)
def test_invalid_orders_are_rejected_with_a_reason(
    driver: TestDriver, lines: list[dict[str, Any]], reason: str
) -> None:
    driver.send("orders.placed", _order(lines=lines), key="c-1")
    (rejected,) = driver.values("orders.rejected")
    assert reason in rejected["reason"]
    assert rejected["order_id"] == "o-1"
    assert driver.values("orders.validated") == []
    assert driver.values("orders.shipments") == []


def test_fulfil_fans_out_to_shipments_and_invoices(driver: TestDriver) -> None:
    driver.send("orders.placed", _order(), key="c-1")
    assert driver.values("orders.shipments") == [
        {"order_id": "o-1", "country": "FR", "item_count": 3}
    ]
    assert driver.values("orders.invoices") == [
        {"order_id": "o-1", "customer_id": "c-1", "amount_cents": 2500}
    ]


def test_large_orders_filter_passes_only_large_ones(driver: TestDriver) -> None:
    small = _order(order_id="small")
    big = _order(
        order_id="big",
        lines=[{"sku": "x", "quantity": 1, "unit_price_cents": LARGE_ORDER_CENTS}],
    )
    driver.send("orders.placed", small, key="c-1")
    driver.send("orders.placed", big, key="c-2")
    assert [o["order_id"] for o in driver.values("orders.large")] == ["big"]
    assert [r.value["order_id"] for r in driver.filtered] == ["small"]


def test_v1_events_without_channel_are_read_with_the_default(
    driver: TestDriver, tmp_path: Path
) -> None:
    schemas = Path(__file__).resolve().parents[3] / "schemas"
    (tmp_path / "OrderLine.avsc").write_bytes((schemas / "OrderLine.avsc").read_bytes())
    (tmp_path / "OrderPlaced.avsc").write_bytes((schemas / "OrderPlaced.v1.avsc").read_bytes())
    old_producer = AvroSerde(SchemaRepository.from_directory(tmp_path), "OrderPlaced")
    old = _order()
    del old["channel"]
    driver.send_raw("orders.placed", old_producer.encode(old), key=b"c-1")
    assert driver.values("orders.validated")[0]["channel"] == "web"


def test_contracts_are_enforced_on_input(driver: TestDriver) -> None:
    with pytest.raises(ContractError, match=r"OrderPlaced"):
        driver.send("orders.placed", {"order_id": "o-1"}, key="c-1")


def test_malformed_bytes_are_dead_lettered_byte_for_byte(driver: TestDriver) -> None:
    driver.send_raw("orders.placed", b"garbage", key=b"c-1")
    (letter,) = driver.dead_letters("orders.placed")
    assert (letter.key, letter.value) == (b"c-1", b"garbage")
    assert letter.dlq_topic == "orders-orders.placed-dlq"
    assert letter.error["stage"] == "decode"
    assert letter.error["exception.class.name"] == "streamkit.errors.SerializationError"
    message = letter.error["exception.message"]
    assert message.startswith("orders.placed[")
    assert "@0: not Avro single-object encoded" in message
    assert message.endswith("(schema streamkit.examples.orders.OrderPlaced)")
    assert driver.values("orders.validated") == []


def test_generated_orders_split_into_validated_and_rejected(driver: TestDriver) -> None:
    for order in orders(100):
        driver.send("orders.placed", order, key=order["customer_id"])
    validated = driver.values("orders.validated")
    assert len(validated) + len(driver.values("orders.rejected")) == 100
    assert len(driver.values("orders.rejected")) == 10
    assert len(driver.values("orders.invoices")) == len(validated)
    large = [v for v in validated if v["total_cents"] >= LARGE_ORDER_CENTS]
    assert len(driver.values("orders.large")) == len(large)
