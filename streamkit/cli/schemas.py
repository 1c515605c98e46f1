"""``streamkit schemas list | check | register``: the Avro contracts in ``schemas/``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click
import orjson

from streamkit.app import load_app
from streamkit.contracts.checks import check_repository, repository_at_ref
from streamkit.contracts.compatibility import Level
from streamkit.contracts.repository import SchemaRepository
from streamkit.contracts.serde import registry_client
from streamkit.errors import ConfigError, KafkaOperationError
from streamkit.settings import Settings

_dir_option = click.option(
    "--schemas-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The contracts [default: $STREAMKIT_SCHEMAS_DIR or ./schemas].",
)


def _directory(schemas_dir: Path | None) -> Path:
    return schemas_dir or Path(os.environ.get("STREAMKIT_SCHEMAS_DIR") or "schemas")


@click.group()
def schemas() -> None:
    """Avro contracts: list them, check compatibility, register them."""


@schemas.command("list")
@_dir_option
def list_(schemas_dir: Path | None) -> None:
    """Every contract with its fingerprint and kept previous versions."""
    repository = SchemaRepository.from_directory(_directory(schemas_dir))
    click.echo(f"{'contract':<52}{'fingerprint':<18}{'previous versions'}")
    for name in repository.names():
        contract = repository.get(name)
        previous = ", ".join(c.source.name for c in repository.previous_versions(name)) or "-"
        click.echo(f"{name:<52}{contract.fingerprint.hex():<18}{previous}")


def _registry_versions(app_target: str, settings: Settings) -> dict[str, list[Any]]:
    if not settings.schema_registry_url:
        raise ConfigError("--against registry needs STREAMKIT_SCHEMA_REGISTRY_URL")
    app = load_app(app_target)
    client = registry_client(settings.schema_registry_url)
    from confluent_kafka.schema_registry.error import SchemaRegistryError  # noqa: PLC0415

    versions: dict[str, list[Any]] = {}
    for topic in app.topics.values():
        if not topic.is_avro:
            continue
        subject = f"{topic.name}-value"
        try:
            numbers = client.get_versions(subject)
        except SchemaRegistryError as exc:  # a subject not registered yet has no history
            if exc.http_status_code != 404:
                raise KafkaOperationError(f"reading subject {subject}: {exc}") from exc
            continue
        history = [orjson.loads(client.get_version(subject, n).schema.schema_str) for n in numbers]
        name = str(history[-1].get("name", "")) if history else ""
        if name:
            versions[name] = history
    return versions


@schemas.command()
@_dir_option
@click.option(
    "--against",
    help="Previous versions from a git ref (e.g. origin/main) or 'registry' "
    "[default: only the .vN files].",
)
@click.option("--level", default="BACKWARD", show_default=True, help="Compatibility level.")
@click.option("--app", "app_target", metavar="MODULE[:APP]", help="With --against registry.")
def check(
    schemas_dir: Path | None, against: str | None, level: str, app_target: str | None
) -> None:
    """Refuse incompatible changes: exit 1 naming each field and rule that breaks."""
    directory = _directory(schemas_dir)
    repository = SchemaRepository.from_directory(directory)
    compatibility = Level.parse(level)
    old = None
    registry = None
    if against == "registry":
        if not app_target:
            raise ConfigError("--against registry needs --app MODULE (its topics name subjects)")
        registry = _registry_versions(app_target, Settings.from_env())
    elif against:
        old = repository_at_ref(directory, against)
    reports = check_repository(repository, compatibility, against=old, registry_versions=registry)
    broken = 0
    for report in reports:
        if report.unchanged:
            click.echo(f"same     {report.name}")
        elif not report.compared_with:
            click.echo(f"new      {report.name}")
        elif report.ok:
            click.echo(f"ok       {report.name} (vs {', '.join(report.compared_with)})")
        else:
            broken += 1
            click.echo(f"BROKEN   {report.name} (vs {', '.join(report.compared_with)})")
            for problem in report.problems:
                click.echo(f"         {problem}")
    if broken:
        raise ConfigError(f"{broken} contract(s) incompatible under {compatibility.value}")
    click.echo(f"all {len(reports)} contracts compatible under {compatibility.value}")


@schemas.command()
@click.option("--app", "app_target", required=True, metavar="MODULE[:APP]")
def register(app_target: str) -> None:
    """Register the contracts of the app's Avro topics as ``<topic>-value`` / ``-key``."""
    settings = Settings.from_env()
    if not settings.schema_registry_url:
        raise ConfigError("schemas register needs STREAMKIT_SCHEMA_REGISTRY_URL")
    app = load_app(app_target)
    from confluent_kafka.schema_registry import Schema  # noqa: PLC0415

    client = registry_client(settings.schema_registry_url)
    repository = SchemaRepository.from_directory(app.schemas_dir())
    for topic in app.topics.values():
        for part, fmt in (("value", topic.value), ("key", topic.key)):
            if fmt in {"json", "string", "bytes"}:
                continue
            subject = f"{topic.name}-{part}"
            contract = repository.get(fmt)
            try:
                schema_id = client.register_schema(subject, Schema(contract.schema_json, "AVRO"))
            except Exception as exc:
                raise KafkaOperationError(f"registering {subject} failed: {exc}") from exc
            click.echo(f"registered {subject}: {contract.name} (id {schema_id})")
