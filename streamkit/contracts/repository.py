"""The schema repository: ``schemas/*.avsc`` parsed once, with named references.

Each file holds one named type (``OrderPlaced.avsc``); a type may refer to the others by
full name, in any file order. Previous versions of a type live beside it as
``<Name>.v<N>.avsc``: they are never current, but their fingerprints resolve, so that a
reader on the current version can still read events written with an older one.
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from fastavro.schema import (
    SchemaParseException,
    UnknownType,
    fingerprint,
    parse_schema,
    to_parsing_canonical_form,
)

from streamkit.errors import ConfigError

__all__ = ["Contract", "SchemaRepository"]

_VERSIONED = re.compile(r"^(?P<stem>.+)\.v(?P<version>\d+)$")


@dataclass(frozen=True)
class Contract:
    """One parsed schema version.

    Attributes:
        name: the full name of the type (``namespace.Name``).
        parsed: the fastavro-parsed schema (references resolved), ready to read and write.
        fingerprint: CRC-64-AVRO of the Parsing Canonical Form (8 bytes, little-endian).
        schema_json: the schema with references expanded, as text (for a Schema Registry).
        version: 0 for the current version, else the ``.vN`` of its file.
        source: the file it came from.
    """

    name: str
    parsed: Any
    fingerprint: bytes
    schema_json: str
    version: int
    source: Path


def _crc64_fingerprint(parsed: Any) -> bytes:
    hex_digest = fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO")
    # fastavro's hex digest is already the little-endian byte order the spec puts on the
    # wire (and Java's BinaryMessageEncoder writes): no reversal.
    return bytes.fromhex(hex_digest)


def _expanded(schema: Any, named: Mapping[str, Any], seen: set[str]) -> Any:
    """The schema with every named reference replaced by its definition (first use only)."""
    if isinstance(schema, str):
        if schema in named and schema not in seen:
            seen.add(schema)
            return _expanded(named[schema], named, seen)
        return schema
    if isinstance(schema, list):
        return [_expanded(s, named, seen) for s in schema]
    if isinstance(schema, dict):
        out = {k: v for k, v in schema.items() if not k.startswith("__")}
        if "name" in out and out.get("type") in {"record", "enum", "fixed", "error"}:
            seen.add(_full_name(out))
        for key in ("type", "items", "values"):
            if key in out and not (key == "type" and out[key] in {"record", "enum", "fixed"}):
                out[key] = _expanded(out[key], named, seen)
        if "fields" in out:
            out["fields"] = [
                {**f, "type": _expanded(f["type"], named, seen)} for f in out["fields"]
            ]
        return out
    return schema


def _full_name(schema: Mapping[str, Any]) -> str:
    name = str(schema["name"])
    namespace = schema.get("namespace")
    return name if "." in name or not namespace else f"{namespace}.{name}"


class SchemaRepository:
    """Contracts by full name (current versions) and by fingerprint (all versions)."""

    def __init__(self) -> None:
        self._current: dict[str, Contract] = {}
        self._by_fingerprint: dict[bytes, Contract] = {}
        self._named: dict[str, Any] = {}
        self._previous: dict[str, list[Contract]] = {}

    @classmethod
    def from_directory(cls, directory: Path | str) -> SchemaRepository:
        """Load every ``.avsc`` under ``directory`` (not recursive)."""
        path = Path(directory)
        if not path.is_dir():
            raise ConfigError(f"schema directory {path} does not exist")
        return cls.from_files(sorted(path.glob("*.avsc")))

    @classmethod
    def from_files(cls, files: Iterable[Path]) -> SchemaRepository:
        """Load the given ``.avsc`` files; current versions first, then ``.vN`` ones."""
        repo = cls()
        current: list[tuple[Path, Any]] = []
        versions: list[tuple[Path, int, Any]] = []
        for file in files:
            try:
                doc = orjson.loads(file.read_bytes())
            except orjson.JSONDecodeError as exc:
                raise ConfigError(f"{file}: not valid JSON: {exc}") from exc
            match = _VERSIONED.match(file.stem)
            if match:
                versions.append((file, int(match["version"]), doc))
            else:
                current.append((file, doc))
        repo._add_current(current)
        for file, version, doc in versions:
            repo._add_version(file, version, doc)
        return repo

    def add_schema(self, schema: Mapping[str, Any], source: str = "<inline>") -> Contract:
        """Register one more current schema given as a dict (for tests and apps)."""
        self._add_current([(Path(source), dict(schema))])
        return self._current[_full_name(schema)]

    def _add_current(self, pending: list[tuple[Path, Any]]) -> None:
        while pending:
            progressed, waiting, missing = False, [], {}
            for file, doc in pending:
                try:
                    parsed = parse_schema(copy.deepcopy(doc), named_schemas=self._named)
                except UnknownType as exc:
                    waiting.append((file, doc))
                    missing[file] = exc.name
                    continue
                except (SchemaParseException, KeyError, TypeError, ValueError) as exc:
                    raise ConfigError(f"{file}: invalid Avro schema: {exc}") from exc
                self._register(file, parsed, version=0)
                progressed = True
            if not progressed:
                file, name = next(iter(missing.items()))
                raise ConfigError(f"{file}: refers to unknown type {name!r}")
            pending = waiting

    def _add_version(self, file: Path, version: int, doc: Any) -> None:
        named = {k: v for k, v in self._named.items() if k != _full_name(doc)}
        try:
            parsed = parse_schema(copy.deepcopy(doc), named_schemas=named)
        except UnknownType as exc:
            raise ConfigError(f"{file}: refers to unknown type {exc.name!r}") from exc
        except (SchemaParseException, KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{file}: invalid Avro schema: {exc}") from exc
        self._register(file, parsed, version=version)

    def _register(self, file: Path, parsed: Any, version: int) -> None:
        if not isinstance(parsed, dict) or "name" not in parsed:
            raise ConfigError(f"{file}: a contract file must hold one named type")
        name = _full_name(parsed)
        named = parsed.get("__named_schemas", {})
        contract = Contract(
            name=name,
            parsed=parsed,
            fingerprint=_crc64_fingerprint(parsed),
            schema_json=orjson.dumps(_expanded(parsed, named, set())).decode(),
            version=version,
            source=file,
        )
        if version == 0:
            if name in self._current:
                raise ConfigError(
                    f"{file}: type {name} is already defined in {self._current[name].source}"
                )
            self._current[name] = contract
        else:
            self._previous.setdefault(name, []).append(contract)
            self._previous[name].sort(key=lambda c: c.version)
        self._by_fingerprint.setdefault(contract.fingerprint, contract)

    def get(self, name: str) -> Contract:
        """The current contract of ``name``; a short name works when it is unambiguous."""
        contract = self._current.get(name)
        if contract is not None:
            return contract
        matches = [c for full, c in self._current.items() if full.rpartition(".")[2] == name]
        if len(matches) == 1:
            return matches[0]
        known = ", ".join(sorted(self._current)) or "none"
        names = [*self._current, *(full.rpartition(".")[2] for full in self._current)]
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown schema {name!r}{hint} (known: {known})")

    def by_fingerprint(self, value: bytes) -> Contract | None:
        """The contract (any version) with this CRC-64-AVRO fingerprint, if known."""
        return self._by_fingerprint.get(value)

    def previous_versions(self, name: str) -> list[Contract]:
        """The ``.vN`` versions kept for ``name``, oldest first."""
        return list(self._previous.get(self.get(name).name, []))

    def names(self) -> list[str]:
        """Full names of the current contracts."""
        return sorted(self._current)

    def __contains__(self, name: object) -> bool:
        return name in self._current

    def __len__(self) -> int:
        return len(self._current)
