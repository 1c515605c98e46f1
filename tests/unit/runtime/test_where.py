"""The event-pattern language of ``where=`` and ``where_headers=``, operator by operator,
including where EventBridge matches differently than a naive reading would; and the
patterns at work in an app (TestDriver)."""

from typing import Any

import pytest

from streamkit import App
from streamkit.errors import ConfigError
from streamkit.runtime.where import compile_header_pattern, compile_pattern
from streamkit.testing import TestDriver

ORDER = {
    "country": "DE",
    "amount": 120.5,
    "items": 3,
    "express": True,
    "coupon": None,
    "customer": {"tier": "gold", "email": "Ann@Example.com", "tags": ["vip", "b2b"]},
    "path": "img/cat.png",
    "ip": "10.0.4.7",
    "lines": [{"sku": "A-1"}, {"sku": "B-2"}],
    "zip": "10115",
    "empty": [],
}

CASES = [
    # exact values: any of the list; a number equals a number only, never its text
    ({"country": ["DE", "FR"]}, True),
    ({"country": ["FR"]}, False),
    ({"items": [3]}, True),
    ({"zip": [10115]}, False),
    ({"express": [True]}, True),
    ({"express": ["true"]}, False),
    ({"coupon": [None]}, True),
    ({"missing": [None]}, False),  # null matches a null, not a missing field
    # nested objects, and arrays: any element may match
    ({"customer": {"tier": ["gold"]}}, True),
    ({"customer": {"tags": ["b2b"]}}, True),
    ({"lines": {"sku": ["B-2"]}}, True),
    ({"lines": {"sku": ["C-3"]}}, False),
    # prefix, suffix, equals-ignore-case (also inside prefix and suffix)
    ({"path": [{"prefix": "img/"}]}, True),
    ({"path": [{"suffix": ".jpg"}]}, False),
    ({"customer": {"email": [{"suffix": {"equals-ignore-case": "@EXAMPLE.COM"}}]}}, True),
    ({"customer": {"email": [{"prefix": {"equals-ignore-case": "ann@"}}]}}, True),
    ({"customer": {"email": [{"equals-ignore-case": "ann@example.com"}]}}, True),
    ({"zip": [{"prefix": "101"}]}, True),
    ({"items": [{"prefix": "3"}]}, False),  # a number is not a string
    # wildcard
    ({"path": [{"wildcard": "img/*.png"}]}, True),
    ({"path": [{"wildcard": "*.gif"}]}, False),
    # anything-but: present and none of them; a missing field does not match
    ({"country": [{"anything-but": ["FR", "IT"]}]}, True),
    ({"country": [{"anything-but": "DE"}]}, False),
    ({"missing": [{"anything-but": "DE"}]}, False),
    ({"path": [{"anything-but": {"prefix": "doc/"}}]}, True),
    ({"path": [{"anything-but": {"suffix": ".png"}}]}, False),
    ({"country": [{"anything-but": {"equals-ignore-case": "de"}}]}, False),
    # numeric ranges; a string is never a number
    ({"amount": [{"numeric": [">", 100, "<=", 200]}]}, True),
    ({"amount": [{"numeric": ["<", 100]}]}, False),
    ({"items": [{"numeric": ["=", 3]}]}, True),
    ({"zip": [{"numeric": [">", 0]}]}, False),
    # exists
    ({"coupon": [{"exists": True}]}, True),  # present, even null
    ({"missing": [{"exists": False}]}, True),
    ({"country": [{"exists": False}]}, False),
    # exists sees leaf values only: an object or an empty array is not one
    ({"customer": [{"exists": True}]}, False),
    ({"customer": [{"exists": False}]}, True),
    ({"lines": [{"exists": True}]}, False),
    ({"customer": {"tags": [{"exists": True}]}}, True),
    # a missing object: its fields are missing too
    ({"billing": {"email": [{"exists": False}]}}, True),
    ({"billing": {"email": [{"exists": True}]}}, False),
    ({"billing": {"email": ["x"]}}, False),
    ({"country": {"code": [{"exists": False}]}}, True),
    # cidr
    ({"ip": [{"cidr": "10.0.0.0/16"}]}, True),
    ({"ip": [{"cidr": "192.168.0.0/24"}]}, False),
    # $or, and several fields (all must match)
    ({"$or": [{"country": ["FR"]}, {"amount": [{"numeric": [">", 100]}]}]}, True),
    ({"$or": [{"country": ["FR"]}, {"items": [4]}]}, False),
    ({"country": ["DE"], "express": [False]}, False),
    ({}, True),
]


@pytest.mark.parametrize(("pattern", "matches"), CASES)
def test_every_operator_matches_as_eventbridge_does(pattern: dict[str, Any], matches: bool) -> None:
    assert compile_pattern(pattern)(ORDER) is matches


def test_an_empty_array_is_no_leaf_value() -> None:
    assert compile_pattern({"empty": [{"exists": False}]})(ORDER)
    assert not compile_pattern({"empty": [{"exists": True}]})(ORDER)


@pytest.mark.parametrize(
    ("expected", "value", "matches"),
    [
        ("STRASSE", "straße", False),  # casefold would say equal; EventBridge does not
        ("straße", "STRASSE", True),  # each character of the pattern, upper or lower
        ("Ǆemal", "ǆEMAL", True),
        ("ΣΟΦΙΑ", "σοφια", True),
        ("abcd", "abc", False),
    ],
)
def test_equals_ignore_case_folds_each_pattern_character_as_eventbridge_does(
    expected: str, value: str, matches: bool
) -> None:
    assert compile_pattern({"a": [{"equals-ignore-case": expected}]})({"a": value}) is matches
    prefix = compile_pattern({"a": [{"prefix": {"equals-ignore-case": expected}}]})
    assert prefix({"a": value + "-tail"}) is matches
    suffix = compile_pattern({"a": [{"suffix": {"equals-ignore-case": expected}}]})
    assert suffix({"a": "head-" + value}) is matches


@pytest.mark.parametrize("text", ["inf", "-inf", "nan", "1_0", "٣", " 5", "0x10", "+5", "5."])
def test_a_header_is_a_number_only_when_it_reads_as_a_json_number(text: str) -> None:
    match = compile_header_pattern({"size": [{"numeric": [">", -1e300]}]})
    assert not match([("size", text.encode())])


@pytest.mark.parametrize("text", ["5", "-2.5", "1e3", "0", "1.5E-2"])
def test_a_header_holding_a_json_number_is_compared_as_one(text: str) -> None:
    match = compile_header_pattern({"size": [{"numeric": [">", -1e300]}]})
    assert match([("size", text.encode())])


@pytest.mark.parametrize(
    ("pattern", "words"),
    [
        ({"country": "DE"}, "country: give a non-empty list of matchers"),
        ({"country": []}, "country: give a non-empty list of matchers"),
        ({"a": {"b": [{"prefixx": "x"}]}}, "a.b: unknown operator 'prefixx' (known: "),
        ({"a": [{"numeric": [">>", 1]}]}, "a: numeric: '>>' 1 is not one of"),
        ({"a": [{"numeric": [">", "1"]}]}, "a: numeric: '>' '1' is not one of"),
        ({"a": [{"cidr": "10.0.0.0/99"}]}, "a: cidr '10.0.0.0/99' is not a network"),
        ({"a": [{"wildcard": "a**b"}]}, "a: wildcard 'a**b' has consecutive *"),
        ({"a": [{"exists": "yes"}]}, "a: exists takes true or false"),
        ({"a": [{"prefix": "x", "suffix": "y"}]}, "a: one operator per matcher"),
        ({"$or": [{"a": [1]}]}, "$or: $or takes a list of at least two patterns"),
        ({"a": [{"anything-but": {"numeric": [">", 1]}}]}, "a: anything-but takes values"),
    ],
)
def test_a_bad_pattern_names_the_field_and_the_operator(
    pattern: dict[str, Any], words: str
) -> None:
    with pytest.raises(
        ValueError, match=words.replace("(", r"\(").replace("*", r"\*").replace("$", r"\$")
    ):
        compile_pattern(pattern)


def test_header_patterns_see_strings_and_any_value_of_a_repeated_header() -> None:
    match = compile_header_pattern({"type": ["order.placed"], "size": [{"numeric": [">", 5]}]})
    assert match([("type", b"order.placed"), ("size", b"10")])
    assert match([("type", b"other"), ("type", b"order.placed"), ("size", b"7")])
    assert not match([("type", b"order.placed"), ("size", b"3")])
    assert not match([("type", b"order.placed")])
    with pytest.raises(ValueError, match="headers are flat"):
        compile_header_pattern({"a": {"b": ["c"]}})


def _app() -> App:
    app = App("w", dead_letters=True)
    app.topic("orders")
    app.topic("eu")
    app.topic("big")
    return app


def test_processors_get_only_the_events_their_patterns_match_and_misses_are_counted() -> None:
    app = _app()

    @app.processor(input="orders", output="eu", where={"country": ["DE", "FR"]})
    def europe(order: dict[str, Any]) -> dict[str, Any]:
        return order

    @app.processor(input="orders", output="big", where={"amount": [{"numeric": [">", 100]}]})
    def large(order: dict[str, Any]) -> dict[str, Any]:
        return order

    driver = TestDriver(app)
    for order in (
        {"country": "DE", "amount": 5},
        {"country": "US", "amount": 500},
        {"country": "FR", "amount": 150},
    ):
        driver.send("orders", order, key="k")
    assert [o["amount"] for o in driver.values("eu")] == [5, 150]
    assert [o["country"] for o in driver.values("big")] == ["US", "FR"]
    assert driver.engine.pipeline.filters.unmatched == {"europe": 1, "large": 1}


def test_header_patterns_keep_records_from_being_decoded_at_all() -> None:
    app = _app()
    calls: list[Any] = []

    @app.processor(input="orders", output="eu", where_headers={"type": ["order.placed"]})
    def placed(order: dict[str, Any]) -> dict[str, Any]:
        calls.append(order)
        return order

    driver = TestDriver(app)
    driver.engine.append("orders", b"k", b"\xff not json", [("type", b"order.cancelled")])
    driver.send("orders", {"n": 1}, key="k", headers={"type": "order.placed"})
    assert calls == [{"n": 1}]
    assert driver.dead_letters() == []  # the bytes that do not decode were never decoded
    assert driver.engine.pipeline.filters.unmatched == {"placed": 1}


def test_a_header_miss_is_counted_once_when_another_processor_takes_the_record() -> None:
    app = _app()

    @app.processor(input="orders", output="eu", where_headers={"type": ["a"]})
    def first(order: dict[str, Any]) -> dict[str, Any]:
        return order

    @app.processor(input="orders", output="big", where_headers={"type": ["b"]})
    def second(order: dict[str, Any]) -> dict[str, Any]:
        return order

    driver = TestDriver(app)
    driver.send("orders", {"n": 1}, key="k", headers={"type": "b"})
    driver.send("orders", {"n": 2}, key="k", headers={"type": "c"})
    assert driver.values("big") == [{"n": 1}]
    assert driver.engine.pipeline.filters.unmatched == {"first": 2, "second": 1}


def test_a_bad_pattern_stops_the_app_at_start_up_with_one_line() -> None:
    app = _app()

    @app.processor(input="orders", output="eu", where={"country": [{"startswith": "D"}]})
    def europe(order: dict[str, Any]) -> dict[str, Any]:
        return order

    with pytest.raises(ConfigError) as raised:
        TestDriver(app)
    message = str(raised.value)
    assert message.startswith("processor europe: where: country: unknown operator 'startswith'")
    assert "\n" not in message
