"""Debezium change events as typed changes: envelopes with and without schemas,
flattened rows, keys, tombstones, Avro by writer schema (the client's mock registry); and
JSON held to an Avro contract."""

import io
import struct
from typing import Any

import orjson
import pytest
from confluent_kafka.schema_registry import Schema
from fastavro import parse_schema, schemaless_writer

from streamkit import App, Change, Emit
from streamkit.contracts.changes import (
    ChangeKeySerde,
    ChangeSerde,
    parse_change,
    parse_key,
    read_json,
    registry_reader,
)
from streamkit.contracts.repository import SchemaRepository
from streamkit.contracts.serde import JsonContractSerde, registry_client
from streamkit.errors import ContractError, SerializationError
from streamkit.testing import TestDriver

KEY = b'{"id": 1}'
SOURCE = {"db": "shop", "schema": "public", "table": "products", "lsn": 2260448, "txId": 771}
PAYLOAD = {
    "before": {"id": 1, "stock": 10},
    "after": {"id": 1, "stock": 9},
    "source": SOURCE,
    "op": "u",
    "ts_ms": 1700000000000,
    "transaction": None,
}


def test_an_envelope_with_or_without_its_schema_is_a_typed_change() -> None:
    for doc in (PAYLOAD, {"schema": {"type": "struct"}, "payload": PAYLOAD}):
        change = ChangeSerde(read_json).decode(orjson.dumps(doc))
        assert change.op == "update"
        assert change.before == {"id": 1, "stock": 10}
        assert change.after == {"id": 1, "stock": 9}
        assert (change.table, change.lsn, change.tx_id) == ("products", 2260448, 771)
        assert change.row == change.after
        assert not change.is_delete


@pytest.mark.parametrize(
    ("code", "op"), [("c", "create"), ("r", "read"), ("d", "delete"), ("t", "truncate")]
)
def test_each_op_code_is_named(code: str, op: str) -> None:
    change = parse_change({**PAYLOAD, "op": code, "after": None if code == "d" else {"id": 1}})
    assert change.op == op
    assert change.is_delete is (op == "delete")
    if op == "delete":
        assert change.row == {"id": 1, "stock": 10}  # the row that went


def test_flattened_rows_are_understood() -> None:
    flat = parse_change(
        {
            "id": 1,
            "stock": 9,
            "__op": "u",
            "__table": "products",
            "__lsn": 42,
            "__source_ts_ms": 7,
            "__deleted": "false",
        }
    )
    assert (flat.op, flat.after, flat.table, flat.lsn, flat.flattened) == (
        "update",
        {"id": 1, "stock": 9},
        "products",
        42,
        True,
    )
    gone = parse_change({"id": 1, "stock": 9, "__op": "d", "__deleted": "true"})
    assert (gone.op, gone.before, gone.after) == ("delete", {"id": 1, "stock": 9}, None)
    assert parse_change({"id": 1}).op == "upsert"  # no added fields: nothing more is known


def test_what_is_not_a_change_is_a_clear_serialization_error() -> None:
    serde = ChangeSerde(read_json)
    with pytest.raises(SerializationError, match="malformed JSON"):
        serde.decode(b"{not json")
    with pytest.raises(SerializationError, match="a change event is a JSON object, not list"):
        serde.decode(b"[1, 2]")
    with pytest.raises(SerializationError, match="unknown Debezium op 'x'"):
        serde.decode(orjson.dumps({**PAYLOAD, "op": "x"}))


def test_keys_one_column_is_its_value_composite_is_a_dict() -> None:
    keys = ChangeKeySerde(read_json)
    assert keys.decode(b'{"id": 7}') == 7
    assert keys.decode(b'{"schema": {}, "payload": {"id": "a"}}') == "a"
    assert keys.decode(b'{"a": 1, "b": 2}') == {"a": 1, "b": 2}
    assert parse_key("plain") == "plain"


def test_a_change_is_written_back_as_debezium_wrote_it() -> None:
    change = parse_change(PAYLOAD)
    assert orjson.loads(ChangeSerde(read_json).encode(change)) == PAYLOAD
    assert Change.tombstone(3).envelope() is None


def test_avro_records_are_read_by_their_writer_schema_from_the_registry() -> None:
    value = {
        "type": "record",
        "name": "Value",
        "fields": [{"name": "id", "type": "int"}, {"name": "stock", "type": "int"}],
    }
    schema = {
        "type": "record",
        "name": "Envelope",
        "namespace": "shop.public.products",
        "fields": [
            {"name": "before", "type": ["null", value]},
            {"name": "after", "type": ["null", "Value"]},
            {"name": "op", "type": "string"},
            {"name": "ts_ms", "type": ["null", "long"]},
        ],
    }

    client = registry_client("mock://cdc-test")
    schema_id = client.register_schema(
        "shop.public.products-value", Schema(orjson.dumps(schema).decode(), "AVRO")
    )
    body = io.BytesIO()
    schemaless_writer(
        body,
        parse_schema(schema),
        {"before": None, "after": {"id": 1, "stock": 3}, "op": "c", "ts_ms": 5},
    )
    record = b"\x00" + struct.pack(">I", schema_id) + body.getvalue()
    change = ChangeSerde(registry_reader(client), "debezium+avro").decode(record)
    assert (change.op, change.after) == ("create", {"id": 1, "stock": 3})
    with pytest.raises(SerializationError, match="not a Confluent-wire-format Avro record"):
        ChangeSerde(registry_reader(client)).decode(b"{}")
    with pytest.raises(SerializationError, match="schema id 999 is unknown to the Schema Registry"):
        ChangeSerde(registry_reader(client)).decode(b"\x00" + struct.pack(">I", 999) + b"x")


def test_json_is_held_to_its_avro_contract_both_ways() -> None:
    repo = SchemaRepository()
    repo.add_schema(
        {
            "type": "record",
            "name": "Placed",
            "fields": [{"name": "order_id", "type": "string"}, {"name": "quantity", "type": "int"}],
        }
    )
    serde = JsonContractSerde(repo, "Placed")
    assert serde.decode(b'{"order_id": "o1", "quantity": 2}') == {"order_id": "o1", "quantity": 2}
    with pytest.raises(ContractError, match=r"field Placed\.extra is not in it"):
        serde.decode(b'{"order_id": "o1", "quantity": 2, "extra": 1}')
    with pytest.raises(ContractError, match="quantity"):
        serde.encode({"order_id": "o1", "quantity": "two"})


def _app() -> App:
    app = App("cdc")
    app.topic("pg.products", value="debezium", key="debezium")
    app.topic("view")
    app.topic("orders")
    app.topic("enriched")
    products = app.table("products", topic="pg.products", global_=True)

    @app.processor(input="pg.products", output="view")
    def mirror(change: Change) -> Any:
        if change.is_tombstone:
            return Emit("view", None, key=str(change.key))  # a tombstone, forwarded as null
        return None if change.after is None else {**change.after, "op": change.op}

    @app.processor(input="orders", output="enriched", tables=[products.left(on="product_id")])
    def enrich(order: dict[str, Any], product: dict[str, Any] | None) -> dict[str, Any]:
        return {**order, "stock": None if product is None else product["stock"]}

    return app


def test_processors_get_changes_with_their_key_and_tombstones_stay_null() -> None:
    driver = TestDriver(_app())
    driver.send_raw(
        "pg.products", orjson.dumps({**PAYLOAD, "op": "c", "before": None}), key=b'{"id": 1}'
    )
    driver.send_raw(
        "pg.products", orjson.dumps({**PAYLOAD, "op": "d", "after": None}), key=b'{"id": 1}'
    )
    driver.send_raw("pg.products", None, key=KEY)
    records = driver.records("view")
    assert [r.value for r in records] == [{"id": 1, "stock": 9, "op": "create"}, None]
    assert [r.key for r in records] == ["1", "1"]
    assert driver.dead_letters() == []


def test_a_table_of_a_change_topic_holds_the_current_rows_and_deletes_remove_them() -> None:
    driver = TestDriver(_app())
    driver.send_raw("pg.products", orjson.dumps({**PAYLOAD, "op": "c"}), key=KEY)
    driver.send("orders", {"order_id": "a", "product_id": 1})
    driver.send_raw(
        "pg.products", orjson.dumps({**PAYLOAD, "op": "d", "after": None}), key=b'{"id": 1}'
    )
    driver.send("orders", {"order_id": "b", "product_id": 1})
    assert [v["stock"] for v in driver.values("enriched")] == [9, None]
