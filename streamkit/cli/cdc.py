"""``streamkit postgres start|stop|status`` and ``streamkit connect start|stop|status``: a
local PostgreSQL and a local Kafka Connect worker with Debezium, for change data capture."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from streamkit.cli._kafka import kafka_settings
from streamkit.errors import ConfigError
from streamkit.ops.connect_rest import await_running, register
from streamkit.ops.local_connect import DEFAULT_REST_PORT, LocalConnect
from streamkit.ops.local_postgres import DEFAULT_PORT, LocalPostgres
from streamkit.settings import Settings

_PG_DIR = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Its state [default: $STREAMKIT_STATE_DIR/postgres].",
)
_CONNECT_DIR = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Its state [default: $STREAMKIT_STATE_DIR/connect].",
)


def _postgres(data_dir: Path | None, port: int = DEFAULT_PORT) -> LocalPostgres:
    return LocalPostgres((data_dir or Settings.from_env().state_dir / "postgres").resolve(), port)


def run_sql(dsn: str, files: list[Path]) -> None:
    """Run SQL files against ``dsn`` (each in one transaction)."""
    try:
        import psycopg  # noqa: PLC0415 - only for --sql
    except ImportError:
        raise ConfigError("--sql needs psycopg: pip install 'streamkit[cdc]'") from None
    with psycopg.connect(dsn) as connection:
        for file in files:
            connection.execute(file.read_text().encode())  # a whole script
            connection.commit()


@click.group()
def postgres() -> None:
    """A local PostgreSQL (Debian's server) with wal_level=logical, for CDC."""


@postgres.command("start")
@_PG_DIR
@click.option("--port", default=DEFAULT_PORT, show_default=True, help="Port on 127.0.0.1.")
@click.option(
    "--sql",
    "sql",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Run this SQL file once it runs (repeatable).",
)
def postgres_start(data_dir: Path | None, port: int, sql: tuple[Path, ...]) -> None:
    """Start it (initialised on first use); print its connection string."""
    info = _postgres(data_dir, port).start()
    if sql:
        run_sql(info.dsn, list(sql))
    click.echo(f"PostgreSQL running at 127.0.0.1:{info.port} (pid {info.pid}); {info.dsn}")


@postgres.command("stop")
@_PG_DIR
@click.option("--remove", is_flag=True, help="Also remove its data (databases, slots).")
def postgres_stop(data_dir: Path | None, remove: bool) -> None:
    """Stop it."""
    server = _postgres(data_dir)
    stopped = server.stop()
    if remove:
        server.destroy()
    click.echo(
        ("PostgreSQL stopped" if stopped else "PostgreSQL was not running")
        + ("; its data removed" if remove else "")
    )


@postgres.command("status")
@_PG_DIR
def postgres_status(data_dir: Path | None) -> None:
    """Whether it runs (exit 1 when not)."""
    info = _postgres(data_dir).info()
    if info is None:
        click.echo("PostgreSQL not running")
        sys.exit(1)
    click.echo(f"PostgreSQL running at 127.0.0.1:{info.port} (pid {info.pid}); {info.dsn}")


def _connect(data_dir: Path | None, rest_port: int = DEFAULT_REST_PORT) -> LocalConnect:
    settings = Settings.from_env()
    return LocalConnect(
        (data_dir or settings.state_dir / "connect").resolve(), settings.cache_dir, rest_port
    )


@click.group()
def connect() -> None:
    """A local Kafka Connect worker with Debezium's PostgreSQL connector."""


@connect.command("start")
@_CONNECT_DIR
@click.option(
    "--rest-port",
    default=DEFAULT_REST_PORT,
    show_default=True,
    help="Its REST API's port on 127.0.0.1.",
)
@click.option(
    "--postgres-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="The local PostgreSQL whose port the connectors' ${env:STREAMKIT_PG_PORT} "
    "is [default: $STREAMKIT_STATE_DIR/postgres].",
)
@click.argument(
    "connectors",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
def connect_start(
    data_dir: Path | None, rest_port: int, postgres_dir: Path | None, connectors: tuple[Path, ...]
) -> None:
    """Start the worker with CONNECTORS (Kafka Connect .properties files) on the Kafka at
    $STREAMKIT_BOOTSTRAP_SERVERS; wait until they run."""
    settings = kafka_settings()
    env = {}
    if "STREAMKIT_PG_PORT" not in os.environ:
        local = _postgres(postgres_dir).info()
        if local is not None:
            env["STREAMKIT_PG_PORT"] = str(local.port)
    worker = _connect(data_dir, rest_port)
    info = worker.start(settings.bootstrap_servers, list(connectors), env)
    click.echo(
        f"Kafka Connect running at {info.url} (pid {info.pid}): "
        f"{', '.join(info.connectors)} running; log {worker.log}"
    )


@connect.command("stop")
@_CONNECT_DIR
def connect_stop(data_dir: Path | None) -> None:
    """Stop the worker (its source offsets are kept for the next start)."""
    stopped = _connect(data_dir).stop()
    click.echo("Kafka Connect stopped" if stopped else "Kafka Connect was not running")


@connect.command("status")
@_CONNECT_DIR
def connect_status(data_dir: Path | None) -> None:
    """Each connector's state (exit 1 when the worker does not run)."""
    worker = _connect(data_dir)
    info = worker.info()
    if info is None:
        click.echo("Kafka Connect not running")
        sys.exit(1)
    states = worker.states(info) or {}
    click.echo(f"Kafka Connect running at {info.url} (pid {info.pid})")
    for name in info.connectors:
        click.echo(f"  {name}: {states.get(name, 'no answer')}")


@connect.command("register")
@click.option("--url", required=True, help="The Connect cluster's REST API (http://host:8083).")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a connector property (repeatable).",
)
@click.option("--wait", default=180.0, show_default=True, help="Seconds to wait for RUNNING.")
@click.argument(
    "connectors",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
def connect_register(
    url: str, overrides: tuple[str, ...], wait: float, connectors: tuple[Path, ...]
) -> None:
    """Create or update CONNECTORS (.properties files) on a running Connect cluster (its
    REST API), and wait until they run: for a cluster streamkit did not start (Docker
    Compose's, a shared one)."""
    changes = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--set")
        changes[key] = value
    names = [register(url, path, changes) for path in connectors]
    await_running(url, names, wait)
    click.echo(f"{', '.join(names)} running on {url}")
