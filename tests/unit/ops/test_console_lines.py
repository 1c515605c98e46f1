import orjson
import pytest

from streamkit.errors import SerializationError
from streamkit.ops.console import ConsoleRecord, line_to_record, record_to_line


def test_envelope_line_becomes_key_value_headers_and_partition() -> None:
    record = line_to_record(
        b'{"key": "c-1", "value": {"id": 1}, "headers": [["h", "v"], ["h", "w"]], "partition": 2}',
        "stdin:1",
    )
    assert record.key == b"c-1"
    assert orjson.loads(record.value or b"") == {"id": 1}
    assert record.headers == (("h", b"v"), ("h", b"w"))
    assert record.partition == 2


def test_null_value_is_a_tombstone_and_object_headers_are_accepted() -> None:
    record = line_to_record('{"key": "k", "value": null, "headers": {"a": "1"}}', "f:1")
    assert record.value is None
    assert record.headers == (("a", b"1"),)


def test_value_only_takes_the_whole_line_as_value() -> None:
    assert line_to_record(b'{"value": 3}', "x", value_only=True).value == b'{"value":3}'


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"{not json", r"stdin:7: not JSON"),
        (b'{"key": "k"}', r'stdin:7: expected an object with a "value" field'),
        (b'{"value": 1, "kye": "k"}', r"stdin:7: unknown fields \['kye'\]"),
        (b'{"value": 1, "key": 5}', r"stdin:7: key must be a string"),
        (b'{"value": 1, "partition": -1}', r"stdin:7: partition must be a non-negative"),
        (b'{"value": 1, "headers": [["a"]]}', r"stdin:7: headers must be"),
    ],
)
def test_bad_lines_name_the_line_and_the_problem(line: bytes, message: str) -> None:
    with pytest.raises(SerializationError, match=message):
        line_to_record(line, "stdin:7")


def test_consumed_record_round_trips_through_a_line() -> None:
    record = ConsoleRecord(
        value=b'{"a":[1,2]}',
        key=b"\xff\x00",
        headers=(("trace", b"abc"), ("bin", b"\x80")),
        partition=1,
        topic="t",
        offset=5,
        timestamp=1700000000000,
    )
    line = record_to_line(record)
    doc = orjson.loads(line)
    assert doc["key"] == {"b64": "/wA="}
    assert doc["value"] == {"a": [1, 2]}
    assert doc["headers"] == [["trace", "abc"], ["bin", {"b64": "gA=="}]]
    back = line_to_record(line, "roundtrip")
    assert (back.key, back.headers, back.partition) == (record.key, record.headers, 1)
    assert orjson.loads(back.value or b"") == {"a": [1, 2]}


def test_text_that_is_not_json_is_shown_as_a_string() -> None:
    doc = orjson.loads(record_to_line(ConsoleRecord(value=b"plain text", topic="t")))
    assert doc["value"] == "plain text"
