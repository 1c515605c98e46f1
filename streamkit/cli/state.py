"""``streamkit state get --app MODULE STORE KEY``: a key's current state (or windows)."""

from __future__ import annotations

import sys
import time

import click
import orjson

from streamkit.app import load_app
from streamkit.cli._kafka import kafka_settings
from streamkit.errors import ConfigError
from streamkit.ops.replay import parse_datetime
from streamkit.ops.state import read_state
from streamkit.settings import parse_duration


@click.group()
def state() -> None:
    """Event-sourced state of an app's aggregates and windows."""


def _when(text: str | None) -> int | None:
    """Milliseconds of ``1767225600000``, an ISO time with a timezone, or ``2h`` ago."""
    if text is None:
        return None
    if text.isdigit():
        return int(text)
    try:
        return int((time.time() - parse_duration(text)) * 1000)
    except ConfigError:
        return int(parse_datetime(text).timestamp() * 1000)


@state.command()
@click.option("--app", "target", required=True, metavar="MODULE[:APP]")
@click.option("--from", "since", help="Window stores: windows ending after this time.")
@click.option("--to", "until", help="Window stores: windows starting before this time.")
@click.argument("store")
@click.argument("key")
def get(target: str, since: str | None, until: str | None, store: str, key: str) -> None:
    """Print KEY's state in STORE as JSON (from the changelog); exit 3 when it has none.

    For a window store, the key's windows still held (open, or closed by idleness and not
    yet passed by the stream time): a list of start, end, value and closed. Times are
    milliseconds, ISO 8601 with a timezone, or durations ago (``2h``)."""
    app = load_app(target)
    answer = read_state(
        app,
        kafka_settings().client_config(),
        store,
        key,
        since=_when(since) or 0,
        until=_when(until),
    )
    if not answer.found:
        click.echo(f"no state for {key!r} in store {store}", err=True)
        sys.exit(3)
    sys.stdout.buffer.write(orjson.dumps(answer.state) + b"\n")
