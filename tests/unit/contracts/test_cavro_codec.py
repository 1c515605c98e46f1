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
            "null": lambda: None, "boolean": lambda: rng.random() < 0.5,
            "int": lambda: rng.randint(-(2**31), 2**31 - 1),
            "long": lambda: rng.randint(-(2**63), 2**63 - 1),
            "float": lambda: float(rng.randint(-1000, 1000)) / 4,
            "double": lambda: rng.uniform(-1e9, 1e9),
            "string": lambda: "".join(rng.choice("aé€z0 ") for _ in range(rng.randint(0, 12))),
            "bytes": lambda: bytes(rng.randrange(256) for _ in range(rng.randint(0, 8))),
        }  # fmt: skip
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
    [("benchmarks/schemas", "BenchEvent"), ("benchmarks/schemas", "BenchResult"),
     ("schemas", "CheckResult"), ("schemas", "OrderDecision"), ("schemas", "CustomerProfile")],
)  # fmt: skip
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
