"""Tables through TestDriver: stream-table joins in their three forms, updates that never
trigger the processor, tombstones, and the co-partitioning check."""

from typing import Any

import pytest

from streamkit import App
from streamkit.errors import ConfigError
from streamkit.state.tables import TableLookup
from streamkit.testing import TestDriver


def _shop(form: str = "left", global_: bool = False, partitions: int = 3) -> App:
    app = App("shop")
    app.topic("orders", partitions=3)
    app.topic("customers", partitions=partitions, config={"cleanup.policy": "compact"},
              keyed_by="id")  # fmt: skip
    app.topic("enriched", partitions=3)
    customers = app.table("customers", topic="customers", key="id", global_=global_)
    lookup = {"table": customers, "left": customers.left(on="customer"),
              "inner": customers.inner(on="customer")}[form]  # fmt: skip

    @app.processor(input="orders", output="enriched", tables=[lookup])
    def enrich(order: dict[str, Any], found: Any) -> dict[str, Any]:
        row = found.get(order["customer"]) if form == "table" else found
        return {**order, "tier": None if row is None else row["tier"]}

    return app


@pytest.mark.parametrize("form", ["table", "left"])
def test_a_left_lookup_gives_the_row_or_none_and_table_updates_never_trigger(form: str) -> None:
    driver = TestDriver(_shop(form))
    driver.send("customers", {"id": "c1", "tier": "gold"}, key="c1")
    assert driver.values("enriched") == []  # a table update runs no processor
    driver.send("orders", {"n": 1, "customer": "c1"}, key="c1")
    driver.send("orders", {"n": 2, "customer": "c2"}, key="c2")
    driver.send("customers", {"id": "c1", "tier": "silver"}, key="c1")
    driver.send("orders", {"n": 3, "customer": "c1"}, key="c1")
    assert [(v["n"], v["tier"]) for v in driver.values("enriched")] == [
        (1, "gold"), (2, None), (3, "silver"),
    ]  # fmt: skip


def test_an_inner_lookup_skips_events_without_a_row_and_a_tombstone_deletes_it() -> None:
    driver = TestDriver(_shop("inner"))
    driver.send("customers", {"id": "c1", "tier": "gold"}, key="c1")
    driver.send("orders", {"n": 1, "customer": "c1"}, key="c1")
    driver.send("orders", {"n": 2, "customer": "c2"}, key="c2")
    driver.send("customers", None, key="c1")  # deleted
    driver.send("orders", {"n": 3, "customer": "c1"}, key="c1")
    assert [v["n"] for v in driver.values("enriched")] == [1]
    assert sorted(e.value["n"] for e in driver.filtered) == [2, 3]


def test_a_partitioned_table_must_have_its_streams_partition_count() -> None:
    expected = "table customers is not co-partitioned with processor enrich: customers has 2"
    with pytest.raises(ConfigError, match=expected):
        TestDriver(_shop(partitions=2))
    driver = TestDriver(_shop("left", global_=True, partitions=2))  # a global one may differ
    driver.send("customers", {"id": "c9", "tier": "gold"}, key="c9")
    driver.send("orders", {"n": 1, "customer": "c9"}, key="c9")
    assert driver.values("enriched")[0]["tier"] == "gold"


def test_a_processor_must_take_one_argument_per_table() -> None:
    app = App("shop")
    app.topic("orders")
    app.topic("customers")
    customers = app.table("customers", topic="customers")
    with pytest.raises(ConfigError, match=r"must take \(event, customers\) or \(event, "
                                          r"customers, ctx\), not 1 parameters"):  # fmt: skip

        @app.processor(input="orders", tables=[customers])
        def enrich(order: dict[str, Any]) -> None: ...

    with pytest.raises(ConfigError, match="a lookup of the inner form needs on="):
        TableLookup(customers, "inner")


def test_a_partitioned_table_keyed_by_a_field_needs_its_topic_keyed_by_it() -> None:
    app = App("shop")
    app.topic("orders")
    app.topic("customers")
    customers = app.table("customers", topic="customers", key="id")

    @app.processor(input="orders", tables=[customers.left(on="customer")])
    def enrich(order: dict[str, Any], customer: Any) -> None: ...

    with pytest.raises(ConfigError, match="table customers is keyed by field 'id' but its topic "
                                          "customers is not declared keyed_by it"):  # fmt: skip
        TestDriver(app)
