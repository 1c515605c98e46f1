"""``streamkit dlq list | show | redrive``: the app's dead letters."""

from __future__ import annotations

import contextlib
import datetime as dt
import sys
from typing import Any

import click
import orjson

from streamkit.app import load_app
from streamkit.cli._kafka import kafka_settings
from streamkit.errors import ConfigError, SerializationError
from streamkit.failures.dead_letter import DeadLetter
from streamkit.ops.console import json_or_text
from streamkit.ops.dlq import Selection, list_dead_letters, redrive, scan
from streamkit.runtime.serdes import TopicSerdes, app_serdes
from streamkit.settings import parse_duration

_app_option = click.option("--app", "target", required=True, metavar="MODULE[:APP]")


def _filters(f: Any) -> Any:
    for option in reversed(
        [
            click.option("--processor", help="Only dead letters of this processor."),
            click.option("--error", help="Only this exception class (short or qualified name)."),
            click.option("--since", help="Only failures since a time (ISO 8601) or ago (10m, 2h)."),
            click.option("--max", "max_records", type=click.IntRange(min=1), help="At most N."),
        ]
    ):
        f = option(f)
    return f


def _since_ms(since: str | None) -> int | None:
    if since is None:
        return None
    try:
        return int((dt.datetime.now(dt.UTC).timestamp() - parse_duration(since)) * 1000)
    except ConfigError:
        pass
    try:
        when = dt.datetime.fromisoformat(since)
    except ValueError as exc:
        raise ConfigError(f"--since {since!r}: expected ISO 8601 or a duration like 10m") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1000)


def _iso(ms: int | None) -> str:
    if ms is None:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@click.group()
def dlq() -> None:
    """Dead-letter topics of an app: list, show, redrive."""


@dlq.command("list")
@_app_option
def list_(target: str) -> None:
    """Every DLQ (and parked) topic of the app: records, oldest and newest failure."""
    app = load_app(target)
    rows = list_dead_letters(app, kafka_settings().client_config())
    click.echo(f"{'topic':<48}{'records':>9}  {'oldest failure':<22}{'newest failure':<22}")
    for row in rows:
        click.echo(
            f"{row.topic:<48}{row.records:>9}  {_iso(row.oldest_ms):<22}{_iso(row.newest_ms):<22}"
        )


def _decoded(serdes_of: dict[str, TopicSerdes], letter: DeadLetter) -> Any:
    if letter.value is None:
        return None
    serdes = serdes_of.get(letter.source_topic)
    if serdes is not None:
        with contextlib.suppress(SerializationError):  # undecodable: why many are here
            return serdes.value.decode(letter.value)
    return json_or_text(letter.value)


@dlq.command()
@_app_option
@_filters
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
def show(
    target: str,
    processor: str | None,
    error: str | None,
    since: str | None,
    max_records: int | None,
    as_json: bool,
) -> None:
    """Dead letters with their error headers, decoded with their topic's contract."""
    app = load_app(target)
    settings = kafka_settings()
    serdes_of = app_serdes(app, settings)
    selection = Selection(processor, error, _since_ms(since), max_records)
    out = sys.stdout.buffer
    if not as_json:
        click.echo(f"{'failed at':<22}{'source':<34}{'processor':<18}{'error'}")
    for letter in scan(app, settings.client_config(), selection):
        if as_json:
            doc = {
                "dlq": f"{letter.dlq_topic}/{letter.dlq_partition}/{letter.dlq_offset}",
                "key": (letter.key or b"").decode("utf-8", "replace") if letter.key else None,
                "value": _decoded(serdes_of, letter),
                "headers": [[k, (v or b"").decode("utf-8", "replace")] for k, v in letter.headers],
                "error": letter.error,
                "redrives": letter.redrives,
            }
            out.write(orjson.dumps(doc, default=str) + b"\n")
            continue
        source = (
            f"{letter.source_topic}[{letter.error.get('partition')}]@{letter.error.get('offset')}"
        )
        message = letter.error.get("exception.message", "").splitlines()[0:1]
        cause = f"{letter.error_class.rpartition('.')[2]}: {message[0] if message else ''}"
        click.echo(f"{_iso(letter.failed_at):<22}{source:<34}{letter.processor or '-':<18}{cause}")


@dlq.command("redrive")
@_app_option
@_filters
@click.option("--to", help="Publish to this topic instead of each record's source topic.")
@click.option("--execute", is_flag=True, help="Really publish (default: dry-run).")
@click.option("--from-start", is_flag=True, help="Rescan each DLQ from its beginning.")
def redrive_(
    target: str,
    processor: str | None,
    error: str | None,
    since: str | None,
    max_records: int | None,
    to: str | None,
    execute: bool,
    from_start: bool,
) -> None:
    """Re-publish dead letters to their source topic (dry-run unless --execute).

    Each record keeps its key, value and headers and gains lineage headers; it runs only
    the processor that failed it. After the app's max_redrives it is parked instead.
    """
    app = load_app(target)
    selection = Selection(processor, error, _since_ms(since), max_records)
    plan = redrive(
        app,
        kafka_settings().client_config(),
        selection,
        to=to,
        execute=execute,
        from_start=from_start,
    )
    verb = "redrove" if plan.executed else "would redrive"
    for (topic, proc), count in sorted(plan.counts.items()):
        click.echo(f"{verb} {count} to {topic} (processor {proc or '-'})")
    click.echo(f"{verb} {plan.total} records" + ("" if execute else " (dry-run; add --execute)"))
