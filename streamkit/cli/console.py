"""``streamkit produce`` and ``streamkit consume``: JSON lines in and out of a topic."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import click

from streamkit.cli._kafka import kafka_settings
from streamkit.contracts.encryption import load_aead
from streamkit.contracts.repository import SchemaRepository
from streamkit.contracts.serde import Serde, registry_client
from streamkit.errors import SerializationError
from streamkit.ops.console import (
    ConsoleRecord,
    ValueEncoder,
    consume_records,
    json_or_text,
    json_value,
    line_to_record,
    produce_records,
    record_to_line,
)
from streamkit.runtime.serdes import make_serde
from streamkit.settings import Settings

_schema_option = click.option(
    "--schema",
    help="Avro contract of the values (a name in --schemas-dir): JSON lines are encoded "
    "to Avro when producing and decoded when consuming.",
)
_schemas_dir_option = click.option(
    "--schemas-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the .avsc contracts are [default: $STREAMKIT_SCHEMAS_DIR or ./schemas].",
)


def _avro(settings: Settings, schema: str, schemas_dir: Path | None, topic: str) -> Serde:
    directory = schemas_dir or Path(os.environ.get("STREAMKIT_SCHEMAS_DIR") or "schemas")
    url = settings.schema_registry_url
    # Fields tagged PII: sealed when producing, shown decrypted only with STREAMKIT_KEYSET.
    return make_serde(
        schema,
        lambda: SchemaRepository.from_directory(directory),
        registry=(lambda: registry_client(url)) if url else None,
        subject=f"{topic}-value",
        keyset=lambda: load_aead(settings.keyset, settings.keyset_kms_uri),
    )


def _lines(
    stream: IO[bytes], name: str, value_only: bool, encode: ValueEncoder
) -> Iterator[ConsoleRecord]:
    for number, line in enumerate(stream, start=1):
        if line.strip():
            yield line_to_record(line, f"{name}:{number}", value_only=value_only, encode=encode)


@click.command()
@click.argument("topic")
@click.option(
    "--file", "source", type=click.File("rb"), default="-", help="JSON lines [default: stdin]."
)
@click.option("--value-only", is_flag=True, help="Each line is the value itself, no envelope.")
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds for acks.")
@_schema_option
@_schemas_dir_option
def produce(
    topic: str,
    source: IO[bytes],
    value_only: bool,
    timeout: float,
    schema: str | None,
    schemas_dir: Path | None,
) -> None:
    """Produce JSON lines to TOPIC: {"key": ..., "value": ..., "headers": [[k, v]]} per line.

    Every record is acknowledged by the broker (acks=all) before the command succeeds.
    """
    settings = kafka_settings()
    name = "stdin" if source is sys.stdin.buffer or source.name == "<stdin>" else source.name
    encode = json_value
    if schema:
        serde = _avro(settings, schema, schemas_dir, topic)

        def encode(value: Any) -> bytes | None:
            return None if value is None else serde.encode(value)

    records = _lines(source, name, value_only, encode)
    count = produce_records(settings.client_config(), topic, records, timeout=timeout)
    click.echo(f"produced {count} records to {topic}", err=True)


@click.command()
@click.argument("topic")
@click.option("--from-beginning", is_flag=True, help="Start at the oldest record, not the end.")
@click.option("--max", "max_records", type=click.IntRange(min=1), help="Stop after N records.")
@click.option("--timeout", type=float, help="Stop after this many seconds without a record.")
@_schema_option
@_schemas_dir_option
def consume(
    topic: str,
    from_beginning: bool,
    max_records: int | None,
    timeout: float | None,
    schema: str | None,
    schemas_dir: Path | None,
) -> None:
    """Print TOPIC's records as JSON lines (all partitions, no consumer group, no commits)."""
    settings = kafka_settings()
    out = sys.stdout.buffer
    decode: Callable[[bytes], Any] = json_or_text
    if schema:
        decode = _avro(settings, schema, schemas_dir, topic).decode
    for record in consume_records(
        settings.client_config(),
        topic,
        from_beginning=from_beginning,
        max_records=max_records,
        idle_timeout=timeout,
    ):
        try:
            line = record_to_line(record, decode)
        except SerializationError as exc:
            raise exc.at(record.topic, record.partition, record.offset) from exc
        out.write(line + b"\n")
        out.flush()
