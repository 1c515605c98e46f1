"""``streamkit state get --app MODULE STORE KEY``: a key's current state."""

from __future__ import annotations

import sys

import click
import orjson

from streamkit.app import load_app
from streamkit.cli._kafka import kafka_settings
from streamkit.ops.state import read_state


@click.group()
def state() -> None:
    """Event-sourced state of an app's aggregates."""


@state.command()
@click.option("--app", "target", required=True, metavar="MODULE[:APP]")
@click.argument("store")
@click.argument("key")
def get(target: str, store: str, key: str) -> None:
    """Print KEY's state in STORE as JSON (from the changelog); exit 3 when it has none."""
    app = load_app(target)
    answer = read_state(app, kafka_settings().client_config(), store, key)
    if not answer.found:
        click.echo(f"no state for {key!r} in store {store}", err=True)
        sys.exit(3)
    sys.stdout.buffer.write(orjson.dumps(answer.state) + b"\n")
