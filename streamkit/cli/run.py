"""``streamkit run MODULE[:app] --workers N | --autoscale MIN..MAX``: the app's
processors as a consumer group of a fixed or lag-driven number of worker processes."""

from __future__ import annotations

import logging
import sys

import click

from streamkit.app import load_app
from streamkit.cli._kafka import kafka_settings
from streamkit.engines.kafka import WorkerOptions
from streamkit.engines.kafka.lag import LagProbe
from streamkit.errors import ConfigError
from streamkit.host.autoscale import AutoscaleOptions, parse_bounds
from streamkit.host.scaler import Scaler
from streamkit.host.supervisor import Supervisor, SupervisorOptions
from streamkit.host.worker import ProcessOptions
from streamkit.observability.logs import configure_logging
from streamkit.runtime import instance
from streamkit.runtime.pipeline import Pipeline
from streamkit.runtime.queues import is_queue_app
from streamkit.settings import parse_duration
from streamkit.topology import Topology


@click.command()
@click.argument("target", metavar="MODULE[:APP]")
@click.option("--workers", type=click.IntRange(1, 256), default=1, show_default=True)
@click.option(
    "--autoscale",
    metavar="MIN..MAX",
    default=None,
    help="Scale the workers with the lag instead of --workers, from MIN (0: scale to "
    "zero) to MAX, never above the input partitions.",
)
@click.option(
    "--lag-per-worker",
    type=click.IntRange(1),
    default=1000,
    show_default=True,
    help="Autoscaling target: records behind that one worker absorbs.",
)
@click.option(
    "--activation-lag",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="Autoscaling from zero: the lag above which the first worker starts.",
)
@click.option(
    "--cooldown",
    default="30s",
    show_default=True,
    help="Autoscaling: how long the lag must stay low before workers are removed.",
)
@click.option(
    "--stuck-after",
    default="60s",
    show_default=True,
    help="Autoscaling: a lagging partition whose offset has not moved this long is "
    "held by one record and left out of the lag.",
)
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=500, show_default=True)
@click.option(
    "--shutdown-timeout",
    type=click.FloatRange(1, 3600),
    default=30.0,
    show_default=True,
    help="Seconds a worker may take to drain, commit and leave on SIGTERM.",
)
@click.option("--commit-interval", type=click.FloatRange(0.05, 600), default=1.0, show_default=True)
@click.option(
    "--max-restarts",
    type=click.IntRange(1, 1000),
    default=5,
    show_default=True,
    help="Crashes of one worker within --restart-window seconds that end the run.",
)
@click.option(
    "--max-pending",
    type=click.IntRange(1, 1_000_000),
    default=None,
    help="Records of concurrent processors taken and not yet done, per worker, above "
    "which their inputs pause [default: 20 per slot of concurrency, at least 1000].",
)
@click.option("--restart-window", type=click.FloatRange(1), default=60.0, show_default=True)
@click.option(
    "--restart-backoff",
    type=click.FloatRange(0.01, 60),
    default=1.0,
    show_default=True,
    help="Seconds before the first restart of a crashed worker; doubles per crash.",
)
@click.option(
    "--http-port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="Serve /metrics, /healthz, /readyz; worker i listens on PORT+i (0: off).",
)
@click.option(
    "--http-host",
    default="127.0.0.1",
    show_default=True,
    help="Interface of the HTTP endpoints (0.0.0.0 in a container, to be scraped).",
)
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text")
@click.option("--tracing", is_flag=True, help="One OpenTelemetry span per record.")
@click.option(
    "--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info"
)
def run(
    target: str,
    workers: int,
    autoscale: str | None,
    lag_per_worker: int,
    activation_lag: int,
    cooldown: str,
    stuck_after: str,
    batch_size: int,
    shutdown_timeout: float,
    commit_interval: float,
    max_restarts: int,
    max_pending: int | None,
    restart_window: float,
    restart_backoff: float,
    http_port: int,
    http_host: str,
    log_format: str,
    tracing: bool,
    log_level: str,
) -> None:
    """Run MODULE's app with N worker processes in one consumer group.

    Running the same command on another machine adds members to the same group.
    SIGTERM or Ctrl-C stops gracefully: drain, flush, commit, leave.

    With --autoscale MIN..MAX the supervisor measures the group's lag every 2 s and
    keeps ceil(lag / --lag-per-worker) workers (within the bounds), removing them only
    after --cooldown of low lag; with --http-port P it serves its own /metrics on P and
    worker i on P+1+i.
    """
    configure_logging(log_level, fmt=log_format)
    scaling = None
    if autoscale is not None:
        source = click.get_current_context().get_parameter_source("workers")
        if source is not click.core.ParameterSource.DEFAULT:
            raise click.UsageError("give --workers N or --autoscale MIN..MAX, not both")
        try:
            low, high = parse_bounds(autoscale)
            scaling = AutoscaleOptions(
                min_workers=low,
                max_workers=high,
                lag_per_worker=lag_per_worker,
                activation_lag=activation_lag,
                cooldown=parse_duration(cooldown),
                stuck_after=parse_duration(stuck_after),
            )
        except ConfigError as exc:
            raise click.BadParameter(str(exc)) from None
    app = load_app(target)
    app.validate()  # a bad definition is refused before Kafka is asked anything
    if scaling is not None and is_queue_app(app):
        raise click.UsageError(
            f"app {app.name} consumes through a share group, whose lag the admin client "
            "cannot read yet: run it with --workers N (N may exceed the partitions)"
        )
    settings = kafka_settings()
    Pipeline(app, settings)  # fail here, once, on a bad app or contract
    scaler, probe = None, None
    if scaling is not None:
        probe = LagProbe(settings, app.group_id, Topology(app).consumed())
        scaler = Scaler(scaling, probe.sample, app.name, http_port, http_host)
    options = SupervisorOptions(
        workers=workers,
        log_level=log_level,
        max_restarts=max_restarts,
        restart_window=restart_window,
        backoff_initial=restart_backoff,
        process=ProcessOptions(
            http_port=http_port, http_host=http_host, log_format=log_format, tracing=tracing
        ),
        worker=WorkerOptions(
            batch_size=batch_size,
            shutdown_timeout=shutdown_timeout,
            commit_interval=commit_interval,
            max_pending=max_pending,
        ),
    )
    count = f"{workers} worker(s)" if scaler is None else f"{autoscale} workers (autoscaled)"
    started = (
        f"running app {app.name} (group {app.group_id}) with {count} on "
        f"{settings.bootstrap_servers}"
    )
    if log_format == "json":  # every line of the run is then a JSON object
        logging.getLogger("streamkit.supervisor").warning(started)
    else:
        click.echo(started, err=True)
    claimed = instance.claim(app.group_id, settings.state_dir / "instances")
    try:
        code = Supervisor(target, options, claimed.id, scaler).run()
    finally:
        claimed.release()
        if probe is not None:
            probe.close()
    sys.exit(code)
