"""Aggregates and dedupe through TestDriver (same pipeline as on Kafka, memory stores)."""

from typing import Any

import pytest

from streamkit import App
from streamkit.errors import ConfigError
from streamkit.state import Entry, MemoryStore, RocksDBStore, fold
from streamkit.state.dedupe import Dedupe
from streamkit.state.stores import decode_entry, encode_entry
from streamkit.testing import TestDriver
from streamkit.topology import Topology


def _totals_app() -> App:
    app = App("t")
    app.topic("orders", partitions=2, keyed_by="customer")
    app.topic("totals", partitions=2)

    @app.aggregate(input="orders", store="totals", key="customer", output="totals")
    def totals(state: dict[str, Any] | None, order: dict[str, Any]) -> dict[str, Any] | None:
        if order.get("close"):
            return None
        state = state or {"n": 0, "sum": 0}
        return {"n": state["n"] + 1, "sum": state["sum"] + order["amount"]}

    return app


def test_an_aggregate_folds_per_key_emits_states_and_writes_the_changelog() -> None:
    driver = TestDriver(_totals_app())
    for n, customer in enumerate(["a", "b", "a", "a"]):
        driver.send("orders", {"customer": customer, "amount": n + 1}, key=customer)
    assert driver.state("totals", "a") == {"n": 3, "sum": 1 + 3 + 4}
    assert driver.state("totals", "b") == {"n": 1, "sum": 2}
    assert [r.key for r in driver.records("totals")] == ["a", "b", "a", "a"]
    changelog = driver.records("t-totals-changelog")
    assert [r.key for r in changelog] == [b"a", b"b", b"a", b"a"]
    assert decode_entry(changelog[-1].value).state == {"n": 3, "sum": 8}


def test_returning_none_deletes_the_state_with_a_tombstone() -> None:
    driver = TestDriver(_totals_app())
    driver.send("orders", {"customer": "a", "amount": 5}, key="a")
    driver.send("orders", {"customer": "a", "close": True}, key="a")
    assert driver.state("totals", "a") is None
    assert driver.records("t-totals-changelog")[-1].value is None
    assert driver.records("totals")[-1].value is None


def test_a_redelivered_record_is_not_folded_twice() -> None:
    (spec,) = _totals_app().aggregates
    order = {"customer": "a", "amount": 5}
    entry, folded = fold(spec, None, order, 10, 1)
    assert folded
    again, folded_again = fold(spec, entry, order, 10, 1)  # the same offset again
    assert not folded_again
    assert again is entry  # written to the changelog again, unchanged
    assert entry is not None
    assert entry.state == {"n": 1, "sum": 5}


def test_a_redelivered_record_through_the_driver_reemits_the_same_state() -> None:
    driver = TestDriver(_totals_app())
    sent = driver.send("orders", {"customer": "a", "amount": 5}, key="a")
    before = driver.records("t-totals-changelog")
    driver.redeliver("orders", sent.partition, sent.offset)  # as after a crash
    after = driver.records("t-totals-changelog")
    assert driver.state("totals", "a") == {"n": 1, "sum": 5}
    assert len(after) == len(before) + 1
    assert after[-1].value == before[-1].value


def test_state_topics_are_compacted_and_partitioned_like_the_input() -> None:
    (changelog,) = Topology(_totals_app()).state_topics()
    assert changelog.name == "t-totals-changelog"
    assert changelog.partitions == 2
    assert changelog.config == {"cleanup.policy": "compact"}


def test_stores_keep_entries_and_rocksdb_keeps_its_checkpoint(tmp_path: Any) -> None:
    for store in (MemoryStore(), RocksDBStore(tmp_path / "db")):
        store.put("k", Entry({"x": 1}, 4, 99))
        assert store.get("k") == Entry({"x": 1}, 4, 99)
        store.delete("k")
        assert store.get("k") is None
        assert len(store) == 0
        store.set_checkpoint(12)
        store.close()
    reopened = RocksDBStore(tmp_path / "db")
    assert reopened.checkpoint() == 12
    reopened.close()
    assert decode_entry(encode_entry(Entry([1], 2, 3))) == Entry([1], 2, 3)


def test_dedupe_runs_the_side_effect_once_per_event_id() -> None:
    app = App("t")
    app.topic("payments")
    app.topic("receipts")
    charged: list[str] = []

    @app.processor(input="payments", output="receipts", dedupe=Dedupe(field="id", window="1h"))
    def charge(payment: dict[str, Any]) -> dict[str, Any]:
        charged.append(payment["id"])
        return payment

    driver = TestDriver(app)
    for payment_id in ["p1", "p2", "p1", "p3", "p2"]:
        driver.send("payments", {"id": payment_id}, key=payment_id)
    assert charged == ["p1", "p2", "p3"]
    assert [v["id"] for v in driver.values("receipts")] == ["p1", "p2", "p3"]
    assert len(driver.records("t-charge-dedupe-changelog")) == 3


def test_dedupe_by_header_and_bad_declarations() -> None:
    app = App("t")
    app.topic("in")
    app.topic("out")
    calls: list[int] = []

    @app.processor(input="in", output="out", dedupe=Dedupe(header="event-id"))
    def once(event: dict[str, Any]) -> dict[str, Any]:
        calls.append(1)
        return event

    driver = TestDriver(app)
    driver.send("in", {}, key="k", headers={"event-id": "e1"})
    driver.send("in", {}, key="k", headers={"event-id": "e1"})
    driver.send("in", {}, key="k")  # no id: always processed
    assert len(calls) == 2
    with pytest.raises(ConfigError, match="exactly one of field= or header="):
        Dedupe()
    with pytest.raises(ConfigError, match="store kind"):
        app.aggregate(input="in", store="s", store_kind="redis")(lambda s, e: e)


def test_a_record_keyed_by_something_else_is_dead_lettered_not_folded() -> None:
    driver = TestDriver(_totals_app())
    driver.send("orders", {"customer": "a", "amount": 5}, key="a")
    driver.send("orders", {"customer": "a", "amount": 7}, key="b")  # not keyed by customer
    driver.send("orders", {"customer": "a", "amount": 9})  # no key at all
    assert driver.state("totals", "a") == {"n": 1, "sum": 5}
    letters = driver.dead_letters("orders")
    assert [letter.error_class for letter in letters] == ["streamkit.errors.KeyMismatchError"] * 2
    assert "record key 'b' is not its state key 'a'" in letters[0].error["exception.message"]
    assert letters[0].error["attempts"] == "1"  # never retried
    assert [r.key for r in driver.records("t-totals-changelog")] == [b"a"]


def test_an_aggregate_with_dedupe_folds_each_event_id_once() -> None:
    app = App("t")
    app.topic("payments", keyed_by="account")

    @app.aggregate(input="payments", store="paid", key="account", dedupe=Dedupe(field="id"))
    def paid(state: int | None, payment: dict[str, Any]) -> int:
        return (state or 0) + payment["amount"]

    driver = TestDriver(app)
    for payment_id, amount in [("p1", 10), ("p2", 5), ("p1", 10), ("p3", 1)]:
        driver.send("payments", {"id": payment_id, "account": "x", "amount": amount}, key="x")
    assert driver.state("paid", "x") == 16
    assert len(driver.records("t-paid-dedupe-changelog")) == 3
