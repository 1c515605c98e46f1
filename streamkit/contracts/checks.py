"""``streamkit schemas check``: the contracts in ``schemas/`` against their previous versions.

Previous versions come from the ``.vN.avsc`` files beside each contract, from a git ref
(the same directory at that commit), or from the Schema Registry (the subjects of an
app's Avro topics).
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from streamkit.contracts.compatibility import Incompatibility, Level, check
from streamkit.contracts.repository import Contract, SchemaRepository
from streamkit.errors import ConfigError

__all__ = ["ContractReport", "check_repository", "repository_at_ref"]


@dataclass
class ContractReport:
    """One contract's verdict."""

    name: str
    compared_with: list[str] = field(default_factory=list)
    problems: list[Incompatibility] = field(default_factory=list)
    unchanged: bool = False

    @property
    def ok(self) -> bool:
        """No incompatibility found."""
        return not self.problems


def _git(directory: Path, *args: str) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(directory), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except OSError as exc:
        raise ConfigError(f"git is needed for --against REF: {exc}") from exc
    if done.returncode != 0:
        raise ConfigError(f"git {' '.join(args)}: {done.stderr.strip().splitlines()[-1:]}")
    return done.stdout


def repository_at_ref(directory: Path, ref: str) -> SchemaRepository | None:
    """The schema repository of ``directory`` as it was at git ``ref`` (None: absent there)."""
    directory = directory.resolve()
    top = Path(_git(directory, "rev-parse", "--show-toplevel").strip())
    try:
        _git(directory, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except ConfigError as exc:
        raise ConfigError(f"git ref {ref!r} not found in {top}") from exc
    relative = directory.relative_to(top).as_posix()
    listing = _git(top, "ls-tree", "--name-only", ref, f"{relative}/").split()
    files = [name for name in listing if name.endswith(".avsc")]
    if not files:
        return None
    with tempfile.TemporaryDirectory(prefix="streamkit-schemas-") as tmp:
        for name in files:
            (Path(tmp) / Path(name).name).write_text(_git(top, "show", f"{ref}:{name}"))
        return SchemaRepository.from_directory(tmp)


def _schema(contract: Contract) -> Any:
    return orjson.loads(contract.schema_json)


def check_repository(
    repository: SchemaRepository,
    level: Level,
    *,
    against: SchemaRepository | None = None,
    registry_versions: dict[str, list[Any]] | None = None,
) -> list[ContractReport]:
    """Check every current contract against its previous versions at ``level``.

    Previous versions, oldest first: the local ``.vN`` files, then the contract at the git
    ref (``against``), then (instead, when given) the registry's versions by contract name.
    """
    reports = []
    for name in repository.names():
        current = repository.get(name)
        report = ContractReport(name)
        previous: list[Any] = []
        labels: list[str] = []
        for old in repository.previous_versions(name):
            previous.append(_schema(old))
            labels.append(old.source.name)
        if against is not None and name in against:
            previous.append(_schema(against.get(name)))
            labels.append("git ref")
        if registry_versions is not None and name in registry_versions:
            previous = list(registry_versions[name])
            labels = [f"registry v{i + 1}" for i in range(len(previous))]
        had_previous = bool(previous)
        previous, labels = _distinct(previous, labels, _schema(current))
        report.unchanged = had_previous and not previous
        report.compared_with = labels if level.transitive else labels[-1:]
        report.problems = check(_schema(current), previous, level)
        reports.append(report)
    return reports


def _distinct(
    schemas: Iterable[Any], labels: Iterable[str], current: Any
) -> tuple[list[Any], list[str]]:
    """Drop versions identical to the one before them (or to the current one, when last)."""
    kept: list[Any] = []
    names: list[str] = []
    for schema, label in zip(schemas, labels, strict=True):
        if kept and kept[-1] == schema:
            continue
        kept.append(schema)
        names.append(label)
    if kept and kept[-1] == current:
        kept.pop()
        names.pop()
    return kept, names
