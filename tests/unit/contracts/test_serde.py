"""Serdes in both wire formats, schema evolution, and the errors bad bytes get."""

import struct
from pathlib import Path

import orjson
import pytest
from fastavro.schema import to_parsing_canonical_form

from streamkit.contracts import (
    AvroSerde,
    ConfluentAvroSerde,
    JsonSerde,
    SchemaRepository,
    StringSerde,
    registry_client,
)
from streamkit.contracts import repository as repository_module
from streamkit.contracts import serde as serde_module
from streamkit.errors import ConfigError, ContractError, SerializationError

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"
V1_ORDER = {
    "order_id": "o-1",
    "customer_id": "c-1",
    "country": "DE",
    "lines": [{"sku": "s-1", "quantity": 2, "unit_price_cents": 1250}],
    "placed_at": 1_767_225_600_000,
}


@pytest.fixture(scope="module")
def repo() -> SchemaRepository:
    return SchemaRepository.from_directory(SCHEMAS)


def _v1_only(tmp_path: Path) -> SchemaRepository:
    """A repository where OrderPlaced v1 is the current version (an old producer)."""
    (tmp_path / "OrderLine.avsc").write_bytes((SCHEMAS / "OrderLine.avsc").read_bytes())
    (tmp_path / "OrderPlaced.avsc").write_bytes((SCHEMAS / "OrderPlaced.v1.avsc").read_bytes())
    return SchemaRepository.from_directory(tmp_path)


def test_single_object_encoding_has_the_spec_header_and_round_trips(
    repo: SchemaRepository,
) -> None:
    serde = AvroSerde(repo, "OrderPlaced")
    order = {**V1_ORDER, "channel": "mobile"}
    data = serde.encode(order)
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == repo.get("OrderPlaced").fingerprint
    decoded = serde.decode(data)
    assert decoded["channel"] == "mobile"
    assert decoded["lines"] == order["lines"]
    assert int(decoded["placed_at"].timestamp() * 1000) == order["placed_at"]


def _crc64_avro(data: bytes) -> int:
    """CRC-64-AVRO exactly as the Avro specification spells it out."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


def test_fingerprint_is_the_spec_crc64_avro_written_little_endian(
    repo: SchemaRepository, tmp_path: Path
) -> None:
    contract = repo.get("OrderLine")
    canonical = to_parsing_canonical_form(contract.parsed).encode()
    assert contract.fingerprint == struct.pack("<Q", _crc64_avro(canonical))
    # Java's SchemaNormalization.parsingFingerprint64 of the benchmark's BenchEvent schema,
    # as printed by Avro 1.12: single-object bytes written here must be readable there.
    bench = SchemaRepository.from_directory(SCHEMAS.parent / "benchmarks" / "schemas")
    (java,) = struct.unpack("<q", bench.get("BenchEvent").fingerprint)
    assert java == -1494357733578808341
    assert AvroSerde(bench, "BenchEvent").encode(
        {"id": 1, "user": "u", "country": "DE", "amount": 1.0, "ts": 0, "tags": [], "note": ""}
    )[2:10] == struct.pack("<q", -1494357733578808341)


def test_v2_reader_reads_v1_events_with_the_default(repo: SchemaRepository, tmp_path: Path) -> None:
    old_writer = AvroSerde(_v1_only(tmp_path), "OrderPlaced")
    v1_bytes = old_writer.encode(V1_ORDER)
    decoded = AvroSerde(repo, "OrderPlaced").decode(v1_bytes)
    assert decoded["channel"] == "web"  # the v2 default fills the new field
    assert decoded["order_id"] == "o-1"


def test_v1_reader_reads_v2_events_ignoring_the_new_field(
    repo: SchemaRepository, tmp_path: Path
) -> None:
    old_repo = _v1_only(tmp_path)
    # the old reader knows the v2 writer only if v2 is in its repository too
    (tmp_path / "OrderPlaced.v2.avsc").write_bytes((SCHEMAS / "OrderPlaced.avsc").read_bytes())
    old_repo = SchemaRepository.from_directory(tmp_path)
    v2_bytes = AvroSerde(repo, "OrderPlaced").encode({**V1_ORDER, "channel": "store"})
    decoded = AvroSerde(old_repo, "OrderPlaced").decode(v2_bytes)
    assert "channel" not in decoded
    assert decoded["customer_id"] == "c-1"


def test_malformed_bytes_give_a_serialization_error_naming_the_schema(
    repo: SchemaRepository,
) -> None:
    serde = AvroSerde(repo, "OrderPlaced")
    with pytest.raises(SerializationError, match=r"not Avro single-object encoded .*c301"):
        serde.decode(b'{"json": true}')
    truncated = serde.encode({**V1_ORDER, "channel": "web"})[:14]
    with pytest.raises(SerializationError, match=r"undecodable Avro body") as caught:
        serde.decode(truncated)
    assert caught.value.schema == "streamkit.examples.orders.OrderPlaced"


def test_unknown_fingerprint_is_named(repo: SchemaRepository) -> None:
    serde = AvroSerde(repo, "OrderPlaced")
    with pytest.raises(SerializationError, match=r"unknown schema fingerprint 0102030405060708"):
        serde.decode(b"\xc3\x01" + bytes([1, 2, 3, 4, 5, 6, 7, 8]) + b"\x00")


def test_error_with_coordinates_names_topic_partition_offset_and_schema(
    repo: SchemaRepository,
) -> None:
    serde = AvroSerde(repo, "OrderPlaced")
    with pytest.raises(SerializationError) as caught:
        serde.decode(b"junk")
    located = caught.value.at("orders.placed", 3, 42)
    assert str(located).startswith("orders.placed[3]@42: not Avro single-object encoded")
    assert str(located).endswith("(schema streamkit.examples.orders.OrderPlaced)")


def test_contract_violation_on_encode_is_a_contract_error(repo: SchemaRepository) -> None:
    serde = AvroSerde(repo, "OrderRejected")
    with pytest.raises(ContractError, match=r"violates the contract: .*reason"):
        serde.encode({"order_id": "o", "customer_id": "c"})
    with pytest.raises(ContractError, match=r"OrderRejected"):
        serde.encode({"order_id": 5, "customer_id": "c", "reason": "r"})


def test_confluent_format_round_trips_through_a_mock_registry(repo: SchemaRepository) -> None:
    client = registry_client("mock://unit")
    serde = ConfluentAvroSerde(client, repo, "OrderPlaced", "orders.placed-value")
    data = serde.encode({**V1_ORDER, "channel": "web"})
    assert data[0] == 0
    schema_id = int.from_bytes(data[1:5], "big")
    assert client.get_schema(schema_id) is not None
    assert serde.decode(data)["order_id"] == "o-1"


def test_confluent_reader_on_v2_reads_events_registered_as_v1(
    repo: SchemaRepository, tmp_path: Path
) -> None:
    client = registry_client("mock://evolution")
    old = ConfluentAvroSerde(client, _v1_only(tmp_path), "OrderPlaced", "orders.placed-value")
    new = ConfluentAvroSerde(client, repo, "OrderPlaced", "orders.placed-value")
    assert new.decode(old.encode(V1_ORDER))["channel"] == "web"


def test_confluent_unknown_schema_id_and_wrong_magic_are_named(repo: SchemaRepository) -> None:
    serde = ConfluentAvroSerde(registry_client("mock://ids"), repo, "OrderPlaced", "s-value")
    with pytest.raises(SerializationError, match=r"unknown schema id 999"):
        serde.decode(b"\x00" + (999).to_bytes(4, "big") + b"\x02")
    with pytest.raises(SerializationError, match=r"not in the Confluent wire format"):
        serde.decode(b"\xc3\x01abcdefgh")


def test_json_and_string_serdes() -> None:
    assert JsonSerde().decode(JsonSerde().encode({"a": [1]})) == {"a": [1]}
    with pytest.raises(SerializationError, match=r"malformed JSON"):
        JsonSerde().decode(b"{nope")
    assert StringSerde().encode(12) == b"12"
    with pytest.raises(SerializationError, match=r"not UTF-8"):
        StringSerde().decode(b"\xff")


def test_repository_resolves_references_in_any_file_order(tmp_path: Path) -> None:
    (tmp_path / "A.avsc").write_bytes(
        orjson.dumps({"type": "record", "name": "n.A", "fields": [{"name": "b", "type": "n.B"}]})
    )
    (tmp_path / "B.avsc").write_bytes(
        orjson.dumps({"type": "record", "name": "n.B", "fields": [{"name": "x", "type": "int"}]})
    )
    repo = SchemaRepository.from_directory(tmp_path)
    assert repo.names() == ["n.A", "n.B"]
    assert AvroSerde(repo, "A").decode(AvroSerde(repo, "A").encode({"b": {"x": 3}})) == {
        "b": {"x": 3}
    }


def test_repository_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "A.avsc").write_bytes(
        orjson.dumps({"type": "record", "name": "n.A", "fields": [{"name": "b", "type": "n.Z"}]})
    )
    with pytest.raises(ConfigError, match=r"A.avsc: refers to unknown type 'n.Z'"):
        SchemaRepository.from_directory(tmp_path)
    (tmp_path / "A.avsc").write_text("{not json")
    with pytest.raises(ConfigError, match=r"A.avsc: not valid JSON"):
        SchemaRepository.from_directory(tmp_path)
    with pytest.raises(ConfigError, match=r"schema directory .* does not exist"):
        SchemaRepository.from_directory(tmp_path / "missing")


def test_unknown_schema_name_lists_the_known_ones(repo: SchemaRepository) -> None:
    with pytest.raises(ConfigError, match=r"unknown schema 'Nope' \(known: .*OrderPlaced"):
        repo.get("Nope")


def test_schemas_are_parsed_once_not_per_message(
    repo: SchemaRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    serde = AvroSerde(repo, "OrderPlaced")
    confluent = ConfluentAvroSerde(registry_client("mock://once"), repo, "OrderPlaced", "s-value")
    confluent.decode(confluent.encode({**V1_ORDER, "channel": "web"}))  # warms the id cache
    calls: list[object] = []
    for module in (serde_module, repository_module):
        monkeypatch.setattr(module, "parse_schema", lambda *a, **k: calls.append(a))
    for _ in range(100):
        serde.decode(serde.encode({**V1_ORDER, "channel": "web"}))
        confluent.decode(confluent.encode({**V1_ORDER, "channel": "web"}))
    assert calls == []


def test_a_field_the_contract_lacks_is_a_contract_error_naming_it(repo: SchemaRepository) -> None:
    serde = AvroSerde(repo, "OrderPlaced")
    order = {**V1_ORDER, "channel": "web"}
    with pytest.raises(ContractError, match=r"field OrderPlaced\.colour is not in it"):
        serde.encode({**order, "colour": "red"})  # fastavro alone drops it silently
    line = {**V1_ORDER["lines"][0], "gift": True}  # type: ignore[dict-item]
    with pytest.raises(ContractError, match=r"field OrderPlaced\.lines\[0\]\.gift is not in it"):
        serde.encode({**order, "lines": [line]})
    assert serde.decode(serde.encode(order))["channel"] == "web"  # nothing else refused
    assert serde.decode(serde.encode(V1_ORDER))["channel"] == "web"  # a default still applies


def test_an_enum_violation_names_the_field(repo: SchemaRepository) -> None:
    serde = AvroSerde(repo, "OrderPlaced")
    with pytest.raises(ContractError, match=r"OrderPlaced\.channel is <fax>"):
        serde.encode({**V1_ORDER, "channel": "fax"})


def test_an_unknown_schema_name_suggests_the_closest(repo: SchemaRepository) -> None:
    with pytest.raises(
        ConfigError, match=r"unknown schema 'OrderPlacd'; did you mean 'OrderPlaced'"
    ):
        repo.get("OrderPlacd")
