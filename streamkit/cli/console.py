"""``streamkit produce`` and ``streamkit consume``: JSON lines in and out of a topic."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import IO

import click

from streamkit.ops.console import (
    ConsoleRecord,
    consume_records,
    line_to_record,
    produce_records,
    record_to_line,
)
from streamkit.settings import Settings


def _lines(stream: IO[bytes], name: str, value_only: bool) -> Iterator[ConsoleRecord]:
    for number, line in enumerate(stream, start=1):
        if line.strip():
            yield line_to_record(line, f"{name}:{number}", value_only=value_only)


@click.command()
@click.argument("topic")
@click.option(
    "--file", "source", type=click.File("rb"), default="-", help="JSON lines [default: stdin]."
)
@click.option("--value-only", is_flag=True, help="Each line is the value itself, no envelope.")
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds for acks.")
def produce(topic: str, source: IO[bytes], value_only: bool, timeout: float) -> None:
    """Produce JSON lines to TOPIC: {"key": ..., "value": ..., "headers": [[k, v]]} per line.

    Every record is acknowledged by the broker (acks=all) before the command succeeds.
    """
    settings = Settings.from_env()
    name = "stdin" if source is sys.stdin.buffer or source.name == "<stdin>" else source.name
    count = produce_records(
        settings.client_config(), topic, _lines(source, name, value_only), timeout=timeout
    )
    click.echo(f"produced {count} records to {topic}", err=True)


@click.command()
@click.argument("topic")
@click.option("--from-beginning", is_flag=True, help="Start at the oldest record, not the end.")
@click.option("--max", "max_records", type=click.IntRange(min=1), help="Stop after N records.")
@click.option("--timeout", type=float, help="Stop after this many seconds without a record.")
def consume(
    topic: str, from_beginning: bool, max_records: int | None, timeout: float | None
) -> None:
    """Print TOPIC's records as JSON lines (all partitions, no consumer group, no commits)."""
    settings = Settings.from_env()
    out = click.get_binary_stream("stdout")
    for record in consume_records(
        settings.client_config(),
        topic,
        from_beginning=from_beginning,
        max_records=max_records,
        idle_timeout=timeout,
    ):
        out.write(record_to_line(record) + b"\n")
        out.flush()
