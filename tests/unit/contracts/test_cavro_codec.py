"""The optional cavro codec gives exactly what fastavro gives: the same bytes, the same
values, the same errors; contracts with logical types stay with fastavro."""

import random
from pathlib import Path
from typing import Any

import pytest

from streamkit.contracts import AvroSerde, SchemaRepository
from streamkit.errors import ContractError, SerializationError

pytest.importorskip("cavro")
ROOT = Path(__file__).resolve().parents[3]


def _value(schema: Any, rng: random.Random, named: dict[str, Any]) -> Any:  # noqa: PLR0911
    """A random value of a (fastavro-parsed) schema."""
    if isinstance(schema, str):
        primitives = {
            "null": lambda: None,
            "boolean": lambda: rng.random() < 0.5,
            "int": lambda: rng.randint(-(2**31), 2**31 - 1),
            "long": lambda: rng.randint(-(2**63), 2**63 - 1),
            "float": lambda: float(rng.randint(-1000, 1000)) / 4,
            "double": lambda: rng.uniform(-1e9, 1e9),
            "string": lambda: "".join(rng.choice("aé€z0 ") for _ in range(rng.randint(0, 12))),
            "bytes": lambda: bytes(rng.randrange(256) for _ in range(rng.randint(0, 8))),
        }
        return primitives[schema]() if schema in primitives else _value(named[schema], rng, named)
    if isinstance(schema, list):
        return _value(rng.choice(schema), rng, named)
    kind = schema["type"]
    if kind == "record":
        named[schema["name"]] = schema
        return {f["name"]: _value(f["type"], rng, named) for f in schema["fields"]}
    if kind == "enum":
        named[schema["name"]] = schema
        return rng.choice(schema["symbols"])
    if kind == "array":
        return [_value(schema["items"], rng, named) for _ in range(rng.randint(0, 3))]
    if kind == "map":
        return {f"k{i}": _value(schema["values"], rng, named) for i in range(rng.randint(0, 3))}
    return _value(kind, rng, named)


@pytest.mark.parametrize(
    ("directory", "name"),
    [
        ("benchmarks/schemas", "BenchEvent"),
        ("benchmarks/schemas", "BenchResult"),
        ("schemas", "CheckResult"),
        ("schemas", "OrderDecision"),
        ("schemas", "CustomerProfile"),
    ],
)
def test_cavro_writes_and_reads_what_fastavro_does(directory: str, name: str) -> None:
    repository = SchemaRepository.from_directory(ROOT / directory)
    fast, slow = AvroSerde(repository, name), AvroSerde(repository, name, fast=False)
    assert fast._fast is not None
    rng = random.Random(name)
    for _ in range(300):
        value = _value(repository.get(name).parsed, rng, {})
        encoded = slow.encode(value)
        assert fast.encode(value) == encoded
        assert fast.decode(encoded) == slow.decode(encoded)


def test_errors_are_fastavros_and_logical_types_stay_with_fastavro() -> None:
    repository = SchemaRepository.from_directory(ROOT / "schemas")
    fast = AvroSerde(repository, "CheckResult")
    good = {"order_id": "o", "check": "c", "ok": True, "reason": None}
    with pytest.raises(ContractError, match=r"field CheckResult\.extra is not in it"):
        fast.encode({**good, "extra": 1})
    # What cavro refuses and fastavro takes (a truthy string for a boolean) is written as
    # fastavro writes it: nothing changes with the extra installed.
    lax = {**good, "ok": "yes"}
    assert fast.encode(lax) == AvroSerde(repository, "CheckResult", fast=False).encode(lax)
    with pytest.raises(SerializationError, match="undecodable Avro body"):
        fast.decode(fast.encode(good)[:-3])
    assert AvroSerde(repository, "OrderPlaced")._fast is None  # timestamp-millis


def test_unknown_fields_are_refused_in_flat_and_nested_contracts(tmp_path: Path) -> None:
    """Flat contracts check keys themselves (cavro ignores extras there), nested ones
    leave it to cavro: either way an unknown field is a ContractError, also when it
    stands in for a field that has a default."""
    (tmp_path / "Flat.avsc").write_text(
        '{"type": "record", "name": "Flat", "fields": [{"name": "a", "type": "long"},'
        ' {"name": "b", "type": "string", "default": "x"},'
        ' {"name": "c", "type": ["null", {"type": "enum", "name": "E", "symbols": ["P"]}]},'
        ' {"name": "d", "type": {"type": "array", "items": "E"}}]}'
    )
    (tmp_path / "Nested.avsc").write_text(
        '{"type": "record", "name": "Nested", "fields": [{"name": "inner", "type":'
        ' {"type": "record", "name": "Inner", "fields": [{"name": "a", "type": "long"}]}}]}'
    )
    repository = SchemaRepository.from_directory(tmp_path)
    flat, nested = AvroSerde(repository, "Flat"), AvroSerde(repository, "Nested")
    assert flat._fast is not None
    assert flat._fast.fields == frozenset("abcd")
    assert not flat._fast.complete  # b has a default: keys are checked, not the size
    assert nested._fast is not None
    assert nested._fast.fields is None
    result = AvroSerde(SchemaRepository.from_directory(ROOT / "benchmarks/schemas"), "BenchResult")
    assert result._fast is not None
    assert result._fast.complete  # no defaults: the size is checked
    full = {"id": 1, "user": "u", "country": "c", "amount_cents": 2, "ts": 3, "flagged": True}
    with pytest.raises(ContractError, match=r"field BenchResult\.z is not in it"):
        result.encode({**full, "z": 1})
    with pytest.raises(SerializationError):  # one missing, one unknown: the same size
        result.encode({**{k: v for k, v in full.items() if k != "ts"}, "z": 1})
    good = {"a": 1, "b": "y", "c": "P", "d": ["P"]}
    assert flat.encode(good) == AvroSerde(repository, "Flat", fast=False).encode(good)
    for bad in ({**good, "z": 1}, {"a": 1, "z": "y", "c": None, "d": []}):
        with pytest.raises(ContractError, match=r"field Flat\.z is not in it"):
            flat.encode(bad)
    assert nested.decode(nested.encode({"inner": {"a": 1}})) == {"inner": {"a": 1}}
    with pytest.raises(ContractError, match=r"Nested\.inner\.z is not in it"):
        nested.encode({"inner": {"a": 1, "z": 2}})
