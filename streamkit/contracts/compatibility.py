"""Schema compatibility, by the Avro schema-resolution rules (as a Schema Registry checks).

``BACKWARD``: the new schema reads data written with the previous one (consumers upgrade
first: fields may be deleted, fields may be added with a default). ``FORWARD``: the
previous schema reads data written with the new one (producers upgrade first: fields may
be added, fields with a default may be deleted). ``FULL``: both. The ``_TRANSITIVE``
forms check against every previous version, not only the latest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from streamkit.errors import ConfigError

__all__ = ["Incompatibility", "Level", "check", "incompatibilities"]

_PROMOTIONS = {
    "int": {"long", "float", "double"},
    "long": {"float", "double"},
    "float": {"double"},
    "string": {"bytes"},
    "bytes": {"string"},
}
_NAMED = {"record", "enum", "fixed", "error"}
_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


class Level(StrEnum):
    """Compatibility levels, as Schema Registry names them."""

    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"
    NONE = "NONE"

    @classmethod
    def parse(cls, text: str) -> Level:
        """The level named ``text`` (case-insensitive)."""
        try:
            return cls(text.upper())
        except ValueError:
            names = ", ".join(level.value for level in cls)
            raise ConfigError(f"unknown compatibility level {text!r} (one of {names})") from None

    @property
    def transitive(self) -> bool:
        """Checked against every previous version."""
        return self.value.endswith("_TRANSITIVE")


@dataclass(frozen=True)
class Incompatibility:
    """One way a reader cannot read a writer: where, and which rule breaks."""

    path: str
    rule: str
    direction: str = ""

    def __str__(self) -> str:
        prefix = f"{self.direction}: " if self.direction else ""
        return f"{prefix}{self.path}: {self.rule}"


class _Names:
    """Named types seen while walking a schema, so that references resolve."""

    def __init__(self) -> None:
        self.types: dict[str, Any] = {}

    def resolve(self, schema: Any, namespace: str) -> tuple[Any, str]:  # noqa: PLR0911 - one return per schema form
        if isinstance(schema, str):
            if schema in _PRIMITIVES:
                return schema, namespace
            full = schema if "." in schema or not namespace else f"{namespace}.{schema}"
            found = self.types.get(full) or self.types.get(schema)
            if found is None:
                raise ConfigError(f"unknown type {schema!r} in schema")
            return found, _namespace(found, namespace)
        if isinstance(schema, dict):
            kind = schema.get("type")
            if kind in _NAMED:
                self.types[_full_name(schema, namespace)] = schema
                return schema, _namespace(schema, namespace)
            if kind in {"array", "map"}:
                return schema, namespace
            if isinstance(kind, str) and kind in _PRIMITIVES:
                return kind, namespace  # a logical type annotates its primitive
            return self.resolve(kind, namespace)
        return schema, namespace

    def register_all(self, schema: Any, namespace: str = "") -> None:
        if isinstance(schema, list):
            for branch in schema:
                self.register_all(branch, namespace)
        elif isinstance(schema, dict):
            kind = schema.get("type")
            if kind in _NAMED:
                self.types[_full_name(schema, namespace)] = schema
                namespace = _namespace(schema, namespace)
                for f in schema.get("fields", []):
                    self.register_all(f["type"], namespace)
            elif kind == "array":
                self.register_all(schema["items"], namespace)
            elif kind == "map":
                self.register_all(schema["values"], namespace)
            elif isinstance(kind, dict | list):
                self.register_all(kind, namespace)


def _full_name(schema: Mapping[str, Any], namespace: str) -> str:
    name = str(schema["name"])
    if "." in name:
        return name
    ns = schema.get("namespace", namespace)
    return f"{ns}.{name}" if ns else name


def _namespace(schema: Mapping[str, Any], namespace: str) -> str:
    name = str(schema.get("name", ""))
    if "." in name:
        return name.rpartition(".")[0]
    return str(schema.get("namespace", namespace))


def _kind(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, dict):
        kind = schema["type"]
        return kind if isinstance(kind, str) else _kind(kind)
    return str(schema)


class _Checker:
    def __init__(self, reader: Any, writer: Any) -> None:
        self.reader_names, self.writer_names = _Names(), _Names()
        self.reader_names.register_all(reader)
        self.writer_names.register_all(writer)
        self.found: list[Incompatibility] = []
        self._seen: set[tuple[int, int]] = set()

    def check(self, reader: Any, writer: Any, path: str, rns: str = "", wns: str = "") -> bool:
        reader, rns = self.reader_names.resolve(reader, rns)
        writer, wns = self.writer_names.resolve(writer, wns)
        rk, wk = _kind(reader), _kind(writer)
        if wk == "union":
            ok = True
            for branch in writer:
                if not self._readable(reader, branch, path, rns, wns):
                    self.found.append(
                        Incompatibility(
                            path,
                            f"writer's union branch {_kind(branch)} has no "
                            "matching branch in the reader",
                        )
                    )
                    ok = False
            return ok
        if rk == "union":
            if any(self._readable(branch, writer, path, rns, wns) for branch in reader):
                return True
            self.found.append(Incompatibility(path, f"reader's union has no branch for {wk}"))
            return False
        return self._same_kind(reader, writer, rk, wk, path, rns, wns)

    def _readable(self, reader: Any, writer: Any, path: str, rns: str, wns: str) -> bool:
        probe = _Checker.__new__(_Checker)
        probe.reader_names, probe.writer_names = self.reader_names, self.writer_names
        probe.found, probe._seen = [], set(self._seen)
        return probe.check(reader, writer, path, rns, wns) and not probe.found

    def _same_kind(
        self, reader: Any, writer: Any, rk: str, wk: str, path: str, rns: str, wns: str
    ) -> bool:
        if rk != wk:
            if rk in _PROMOTIONS.get(wk, set()):
                return True
            self.found.append(Incompatibility(path, f"type changed from {wk} to {rk}"))
            return False
        if rk in {"record", "error"}:
            return self._records(reader, writer, path, rns, wns)
        if rk == "array":
            return self.check(reader["items"], writer["items"], f"{path}[]", rns, wns)
        if rk == "map":
            return self.check(reader["values"], writer["values"], f"{path}{{}}", rns, wns)
        problem = None
        if rk == "enum":
            missing = [x for x in writer["symbols"] if x not in reader["symbols"]]
            if missing and "default" not in reader:
                problem = f"enum symbols {missing} unknown to the reader (no enum default)"
        elif rk == "fixed" and reader.get("size") != writer.get("size"):
            problem = "fixed size changed"
        if problem is not None:
            self.found.append(Incompatibility(path, problem))
        return problem is None

    def _records(self, reader: Any, writer: Any, path: str, rns: str, wns: str) -> bool:
        key = (id(reader), id(writer))
        if key in self._seen:  # recursive types: assume what is being checked holds
            return True
        self._seen.add(key)
        ok = True
        written = {f["name"]: f for f in writer.get("fields", [])}
        for f in writer.get("fields", []):
            for alias in f.get("aliases", []):
                written.setdefault(alias, f)
        for field in reader.get("fields", []):
            name = field["name"]
            source = written.get(name) or next(
                (written[a] for a in field.get("aliases", []) if a in written), None
            )
            where = f"{path}.{name}"
            if source is None:
                if "default" not in field:
                    self.found.append(
                        Incompatibility(
                            where,
                            "the reader has this field without a default, "
                            "and the writer does not write it",
                        )
                    )
                    ok = False
                continue
            ok = self.check(field["type"], source["type"], where, rns, wns) and ok
        return ok


def incompatibilities(reader: Any, writer: Any) -> list[Incompatibility]:
    """Why ``reader`` cannot read data written with ``writer`` (empty: it can)."""
    checker = _Checker(reader, writer)
    name = reader.get("name", "") if isinstance(reader, dict) else _kind(reader)
    checker.check(reader, writer, str(name).rpartition(".")[2] or "<root>")
    unique: dict[str, Incompatibility] = {}
    for item in checker.found:
        unique.setdefault(str(item), item)
    return list(unique.values())


def check(new: Any, previous: Iterable[Any], level: Level) -> list[Incompatibility]:
    """Incompatibilities of ``new`` against ``previous`` versions (newest last) at ``level``."""
    versions = list(previous)
    if level is Level.NONE or not versions:
        return []
    against = versions if level.transitive else versions[-1:]
    found: list[Incompatibility] = []
    for old in against:
        if level.value.startswith(("BACKWARD", "FULL")):
            found += [
                Incompatibility(i.path, i.rule, "BACKWARD (the new schema reads old data)")
                for i in incompatibilities(new, old)
            ]
        if level.value.startswith(("FORWARD", "FULL")):
            found += [
                Incompatibility(i.path, i.rule, "FORWARD (the old schema reads new data)")
                for i in incompatibilities(old, new)
            ]
    return found
