"""Event patterns: ``where=`` and ``where_headers=`` in Amazon EventBridge's language.

A pattern is a dict that mirrors the event. Each leaf is a **list** of matchers, any of
which may match; a nested dict matches a nested object; every field named must match;
``{"$or": [pattern, ...]}`` matches when one of its patterns does. Matchers:

=========================================  ===============================================
``"DE"``, ``5``, ``True``, ``None``         the value itself (``None``: the field is null)
``{"prefix": "eu-"}``                       a string starting with it (also
                                            ``{"prefix": {"equals-ignore-case": "EU-"}}``)
``{"suffix": ".png"}``                      a string ending with it (likewise)
``{"equals-ignore-case": "de"}``            a string equal to it, case aside (each
                                            character of the pattern matches itself, its
                                            lower case or its upper case, as in
                                            EventBridge: ``straße`` matches ``STRASSE``,
                                            not the other way round)
``{"wildcard": "img/*.png"}``               a string, ``*`` for any run of characters
``{"anything-but": ...}``                   present and none of a value, a list of values,
                                            or one ``prefix``/``suffix``/
                                            ``equals-ignore-case``/``wildcard`` matcher
``{"numeric": [">", 0, "<=", 5]}``          a number in the range (``=`` for one value);
                                            a string is not a number and never matches
``{"exists": True}``, ``{"exists": False}`` the field holds a leaf value (even null; not
                                            an object, nor an array without one), or not
``{"cidr": "10.0.0.0/24"}``                 an IP address string inside the network
=========================================  ===============================================

As in EventBridge, a field whose value is an array matches when any element matches, and
a missing field matches only ``{"exists": False}``; so does a field under a missing object
(``{"customer": {"email": [{"exists": False}]}}`` matches an event with no customer).
Header patterns see header values as strings (the last value of a repeated header among
the others, any of which may match); ``numeric`` reads a header's text as a number there
when it is written as a JSON number (``-2.5``, ``1e3``; not ``inf``, ``1_0`` or ``+5``).

:func:`compile_pattern` checks a pattern once, at start-up, and raises ``ValueError`` that
names the field and the bad operator; the matcher it returns is a plain function.
"""

from __future__ import annotations

import ipaddress
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["OPERATORS", "compile_header_pattern", "compile_pattern"]

Matcher = Callable[[Any], bool]
"""A compiled matcher of one value (the value of a present field)."""

OPERATORS = (
    "anything-but",
    "cidr",
    "equals-ignore-case",
    "exists",
    "numeric",
    "prefix",
    "suffix",
    "wildcard",
)
_COMPARE = {
    "<": operator.lt,
    "<=": operator.le,
    "=": operator.eq,
    ">=": operator.ge,
    ">": operator.gt,
}
_MISSING = object()
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


def compile_pattern(pattern: Mapping[str, Any]) -> Callable[[Any], bool]:
    """A function telling whether a decoded event matches ``pattern``."""
    return _object(pattern, "", headers=False)


def compile_header_pattern(pattern: Mapping[str, Any]) -> Callable[[Any], bool]:
    """A function of a record's headers (``[(name, bytes | None), ...]``) telling whether
    they match ``pattern`` (flat: one level of header names)."""
    for name, value in pattern.items():
        if isinstance(value, Mapping) and name != "$or":
            raise ValueError(f"{name}: headers are flat; give a list of matchers")
    match = _object(pattern, "", headers=True)

    def headers_match(headers: Any) -> bool:
        found: dict[str, Any] = {}
        for name, raw in headers or ():
            text = None if raw is None else raw.decode("utf-8", "replace")
            seen = found.get(name, _MISSING)
            if seen is _MISSING:
                found[name] = text
            elif isinstance(seen, list):
                seen.append(text)
            else:
                found[name] = [seen, text]
        return match(found)

    return headers_match


def _object(pattern: Any, path: str, *, headers: bool) -> Matcher:
    if not isinstance(pattern, Mapping):
        raise ValueError(f"{path or 'the pattern'}: expected an object of fields, not {pattern!r}")
    checks: list[Callable[[Any], bool]] = []
    for name, sub in pattern.items():
        where = f"{path}.{name}" if path else str(name)
        if name == "$or":
            if not isinstance(sub, list) or len(sub) < 2:
                raise ValueError(f"{where}: $or takes a list of at least two patterns")
            checks.append(_any_of([_object(p, where, headers=headers) for p in sub]))
            continue
        if isinstance(sub, Mapping):
            nested = _object(sub, where, headers=headers)
            checks.append(_nested(name, nested))
            continue
        checks.append(_field(name, _leaf(sub, where, headers=headers)))
    return lambda event: isinstance(event, Mapping) and all(check(event) for check in checks)


def _any_of(options: list[Matcher]) -> Matcher:
    return lambda event: any(option(event) for option in options)


def _nested(name: str, nested: Matcher) -> Matcher:
    """A nested pattern: it sees the object under ``name``; where there is none (missing,
    or a leaf value), the fields it names are all missing."""

    def check(event: Mapping[str, Any]) -> bool:
        value = event.get(name, _MISSING)
        if isinstance(value, list):
            objects = [item for item in value if isinstance(item, Mapping)]
            return any(nested(item) for item in objects) if objects else nested({})
        return nested(value if isinstance(value, Mapping) else {})

    return check


def _field(name: str, leaf: tuple[list[Matcher], bool | None]) -> Callable[[Any], bool]:
    matchers, exists = leaf

    def check(event: Mapping[str, Any]) -> bool:
        value = event.get(name, _MISSING)
        if isinstance(value, list):  # its leaf values: an array of objects has none
            values = [item for item in value if not isinstance(item, Mapping | list)]
        else:
            values = [] if value is _MISSING or isinstance(value, Mapping) else [value]
        if exists is not None:
            return bool(values) is exists
        return any(m(item) for item in values for m in matchers)

    return check


def _leaf(values: Any, path: str, *, headers: bool) -> tuple[list[Matcher], bool | None]:
    """The matchers of a leaf, and what ``exists`` says (None: it is not used)."""
    if not isinstance(values, list) or not values:
        raise ValueError(
            f"{path}: give a non-empty list of matchers, as in EventBridge "
            f"({{{path.rpartition('.')[2]!r}: [...]}}), not {values!r}"
        )
    matchers: list[Matcher] = []
    exists: bool | None = None
    for value in values:
        if isinstance(value, Mapping):
            if list(value) == ["exists"]:
                if not isinstance(value["exists"], bool) or len(values) > 1:
                    raise ValueError(f"{path}: exists takes true or false, alone in its list")
                exists = value["exists"]
                continue
            matchers.append(_operator(value, path, headers=headers))
        elif isinstance(value, list):
            raise ValueError(f"{path}: a list inside a list of matchers: {value!r}")
        else:
            matchers.append(_exact(value))
    return matchers, exists


def _exact(expected: Any) -> Matcher:
    if expected is None:
        return lambda value: value is None
    if isinstance(expected, bool):
        return lambda value: value is expected
    if isinstance(expected, int | float):
        return lambda value: _number(value) and value == expected
    return lambda value: value == expected


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _operator(spec: Mapping[str, Any], path: str, *, headers: bool) -> Matcher:
    if len(spec) != 1:
        raise ValueError(f"{path}: one operator per matcher, not {sorted(spec)}")
    ((name, arg),) = spec.items()
    if name not in OPERATORS:
        raise ValueError(f"{path}: unknown operator {name!r} (known: {', '.join(OPERATORS)})")
    if name in ("prefix", "suffix"):
        return _affix(name, arg, path)
    if name == "equals-ignore-case":
        regex = _ignore_case(_text(arg, path, name))
        return lambda value: isinstance(value, str) and regex.fullmatch(value) is not None
    if name == "wildcard":
        regex = _wildcard(_text(arg, path, name), path)
        return lambda value: isinstance(value, str) and regex.fullmatch(value) is not None
    if name == "anything-but":
        return _anything_but(arg, path, headers=headers)
    if name == "numeric":
        return _numeric(arg, path, headers=headers)
    if name == "cidr":
        try:
            network = ipaddress.ip_network(_text(arg, path, name), strict=False)
        except ValueError as exc:
            raise ValueError(f"{path}: cidr {arg!r} is not a network: {exc}") from None
        return lambda value: _in_network(value, network)
    raise ValueError(f"{path}: exists takes true or false, alone in its list")


def _affix(name: str, arg: Any, path: str) -> Matcher:
    if isinstance(arg, Mapping) and list(arg) == ["equals-ignore-case"]:
        regex = _ignore_case(_text(arg["equals-ignore-case"], path, name))
        if name == "prefix":
            return lambda value: isinstance(value, str) and regex.match(value) is not None
        suffix = re.compile(f"(?:{regex.pattern})\\Z", re.DOTALL)
        return lambda value: isinstance(value, str) and suffix.search(value) is not None
    text = _text(arg, path, name)
    test = str.startswith if name == "prefix" else str.endswith
    return lambda value: isinstance(value, str) and test(value, text)


def _ignore_case(text: str) -> re.Pattern[str]:
    """A regex of ``text`` case aside, as EventBridge reads equals-ignore-case: each
    character of the pattern stands for itself, its lower case or its upper case (which
    may be longer: ``ß`` also matches ``SS``, while ``SS`` never matches ``ß``)."""
    parts = []
    for char in text:
        forms = sorted({char, char.lower(), char.upper()}, key=lambda f: (-len(f), f))
        parts.append("(?:" + "|".join(re.escape(f) for f in forms) + ")")
    return re.compile("".join(parts), re.DOTALL)


def _anything_but(arg: Any, path: str, *, headers: bool) -> Matcher:
    if isinstance(arg, Mapping):
        inner = _operator(arg, f"{path} (anything-but)", headers=headers)
        if next(iter(arg)) not in ("prefix", "suffix", "equals-ignore-case", "wildcard"):
            raise ValueError(
                f"{path}: anything-but takes values, or a prefix, suffix, "
                "equals-ignore-case or wildcard matcher"
            )
        return lambda value: isinstance(value, str) and not inner(value)
    excluded = [_exact(v) for v in (arg if isinstance(arg, list) else [arg])]
    if any(isinstance(v, Mapping | list) for v in (arg if isinstance(arg, list) else [arg])):
        raise ValueError(f"{path}: anything-but takes plain values, not {arg!r}")
    return lambda value: not any(e(value) for e in excluded)


def _numeric(arg: Any, path: str, *, headers: bool) -> Matcher:
    if not isinstance(arg, list) or len(arg) not in (2, 4):
        raise ValueError(f"{path}: numeric takes [op, number] or [op, number, op, number]")
    tests: list[tuple[Callable[[Any, Any], bool], float]] = []
    for i in range(0, len(arg), 2):
        op, bound = arg[i], arg[i + 1]
        if op not in _COMPARE or not _number(bound):
            raise ValueError(
                f"{path}: numeric: {op!r} {bound!r} is not one of {', '.join(_COMPARE)} "
                "followed by a number"
            )
        tests.append((_COMPARE[op], bound))

    def match(value: Any) -> bool:
        if headers and isinstance(value, str):  # a header: its text as a JSON number
            if _JSON_NUMBER.fullmatch(value) is None:
                return False
            value = float(value)
        return _number(value) and all(test(value, bound) for test, bound in tests)

    return match


def _wildcard(text: str, path: str) -> re.Pattern[str]:
    if "**" in text:
        raise ValueError(f"{path}: wildcard {text!r} has consecutive *")
    return re.compile(".*".join(re.escape(part) for part in text.split("*")), re.DOTALL)


def _in_network(value: Any, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return ipaddress.ip_address(value) in network
    except ValueError:
        return False


def _text(arg: Any, path: str, name: str) -> str:
    if not isinstance(arg, str):
        raise ValueError(f"{path}: {name} takes a string, not {arg!r}")
    return arg
