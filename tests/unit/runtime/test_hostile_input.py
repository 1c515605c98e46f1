"""Hostile input at the decode path (property-based): random and truncated bytes, wrong
schema fingerprints, huge headers and keys. Nothing crashes or hangs, and every record
ends up somewhere accounted for: an output, or a dead letter with its original bytes."""

from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from streamkit import App
from streamkit.contracts import AvroSerde, SchemaRepository
from streamkit.testing import TestDriver

SCHEMAS = Path(__file__).resolve().parents[2] / "integration" / "apps" / "schemas"
VALID = AvroSerde(SchemaRepository.from_directory(SCHEMAS), "Reading")


def _app() -> App:
    app = App("hostile", schemas=SCHEMAS, dead_letters=True)
    app.topic("readings", value="Reading", partitions=1)
    app.topic("doubled", value="Reading", partitions=1)

    @app.processor(input="readings", output="doubled")
    def double(reading: dict[str, Any]) -> dict[str, Any]:
        return {**reading, "value": reading["value"] * 2}

    return app


readings = st.fixed_dictionaries(
    {
        "id": st.integers(-(2**63), 2**63 - 1),
        "value": st.floats(allow_nan=False, allow_infinity=False, width=32),
        "kind": st.text(max_size=40),
    }
)


@st.composite
def hostile_values(draw: st.DrawFn) -> bytes:
    """Valid encodings, truncated ones, wrong fingerprints, or any bytes at all."""
    encoded = VALID.encode(draw(readings))
    kind = draw(st.sampled_from(["valid", "truncated", "fingerprint", "random", "magic"]))
    if kind == "truncated":
        return encoded[: draw(st.integers(0, len(encoded) - 1))]
    if kind == "fingerprint":
        return encoded[:2] + draw(st.binary(min_size=8, max_size=8)) + encoded[10:]
    if kind == "random":
        return draw(st.binary(max_size=300))
    if kind == "magic":  # the right header, then garbage
        return encoded[:10] + draw(st.binary(max_size=64))
    return encoded


headers = st.lists(
    st.tuples(st.text(min_size=1, max_size=30), st.binary(max_size=200_000)), max_size=3
)


@settings(
    max_examples=150,
    deadline=2000,
    suppress_health_check=[HealthCheck.data_too_large, HealthCheck.too_slow],
)
@given(
    records=st.lists(
        st.tuples(hostile_values(), st.none() | st.binary(max_size=2000), headers), max_size=8
    )
)
@example(
    records=[  # a megabyte of headers on a valid record and on a truncated one
        (VALID.encode({"id": 1, "value": 1.0, "kind": "x"}), b"k", [("big", b"x" * 1_000_000)]),
        (
            VALID.encode({"id": 2, "value": 2.0, "kind": "y"})[:12],
            None,
            [("big", b"y" * 1_000_000)],
        ),
    ]
)
def test_every_hostile_record_is_an_output_or_a_dead_letter_with_its_bytes(
    records: list[tuple[bytes, bytes | None, list[tuple[str, bytes]]]],
) -> None:
    driver = TestDriver(_app())
    for value, key, extra in records:
        driver.send_raw("readings", value, key=key, headers=extra)
    outputs = driver.engine.records("doubled")  # raw: a key is passed on as it came
    dead = driver.dead_letters("readings")
    assert len(outputs) + len(dead) == len(records)
    sent = [value for value, _, _ in records]
    for letter in dead:  # the original bytes, and the decode failure that sent them there
        assert letter.value in sent
        assert letter.error_class.rsplit(".", 1)[-1] == "SerializationError", letter.error
    for output in outputs:
        assert set(VALID.decode(output.value() or b"")) == {"id", "value", "kind"}
