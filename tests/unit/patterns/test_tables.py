"""Tables through TestDriver: stream-table joins in their three forms, updates that never
trigger the processor, tombstones, and the co-partitioning check."""

import random
from typing import Any

import pytest

from streamkit import App
from streamkit.errors import ConfigError
from streamkit.state.tables import TableData, TableLookup, TableSpec
from streamkit.testing import TestDriver


def _shop(form: str = "left", global_: bool = False, partitions: int = 3) -> App:
    app = App("shop")
    app.topic("orders", partitions=3)
    app.topic(
        "customers", partitions=partitions, config={"cleanup.policy": "compact"}, keyed_by="id"
    )
    app.topic("enriched", partitions=3)
    customers = app.table("customers", topic="customers", key="id", global_=global_)
    lookup = {
        "table": customers,
        "left": customers.left(on="customer"),
        "inner": customers.inner(on="customer"),
    }[form]

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
        (1, "gold"),
        (2, None),
        (3, "silver"),
    ]


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
    with pytest.raises(
        ConfigError,
        match=r"must take \(event, customers\) or \(event, "
        r"customers, ctx\), not 1 parameters",
    ):

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

    with pytest.raises(
        ConfigError,
        match="table customers is keyed by field 'id' but its topic "
        "customers is not declared keyed_by it",
    ):
        TestDriver(app)


def _compacted_then_read(
    spec: TableSpec, records: list[tuple[str, dict[str, Any] | None]]
) -> dict[str, Any]:
    """The oracle: the table a restarted worker reads from the compacted topic (the latest
    record of each record key, in offset order; tombstones gone too)."""
    latest = {key: n for n, (key, _row) in enumerate(records)}
    data = TableData(spec)
    data.hold(0)
    for n, (key, row) in enumerate(records):
        if latest[key] == n and row is not None:
            data.apply(0, key, row)
    return dict(data.items())


@pytest.mark.parametrize("field", [None, "customer"])
def test_a_live_table_equals_its_compacted_topic_read_again(field: str | None) -> None:
    spec = TableSpec("customers", "customers", key=field, global_=True)
    rng = random.Random(7)
    for _ in range(200):
        records: list[tuple[str, dict[str, Any] | None]] = []
        live = TableData(spec)
        live.hold(0)
        for _ in range(rng.randint(1, 12)):
            key = f"r{rng.randint(1, 4)}"
            row = (
                None
                if rng.random() < 0.3
                else {"customer": f"c{rng.randint(1, 3)}", "n": len(records)}
            )
            records.append((key, row))
            live.apply(0, key, row)
        assert dict(live.items()) == _compacted_then_read(spec, records), records


def test_a_tombstone_removes_the_row_its_record_key_put_in_a_table_keyed_by_a_field() -> None:
    data = TableData(TableSpec("customers", "customers", key="customer", global_=True))
    data.hold(0)
    data.apply(0, "row-1", {"customer": "c1", "tier": "gold"})
    data.apply(0, "row-2", {"customer": "c1", "tier": "silver"})
    assert data.get("c1") == {"customer": "c1", "tier": "silver"}
    data.apply(0, "row-2", None)  # row-1's row comes back, as after compaction
    assert data.get("c1") == {"customer": "c1", "tier": "gold"}
    data.apply(0, "row-1", {"customer": "c2", "tier": "gold"})  # moved
    assert data.get("c1") is None
    data.apply(0, "row-1", None)
    assert len(data) == 0
