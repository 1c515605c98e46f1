"""``streamkit broker start | stop | status``: the local Kafka broker."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from streamkit.ops.local_broker import LocalBroker, LocalBrokerConfig
from streamkit.ops.local_cluster import LocalCluster
from streamkit.settings import Settings

SECURE_PORT = 9093
CLUSTER_PORT = 19092

_data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Broker data, log and state file [default: $STREAMKIT_STATE_DIR/broker].",
)


_secure_option = click.option(
    "--secure",
    is_flag=True,
    help="The secured broker: SASL_SSL with SCRAM users, ACLs enforced "
    f"[port {SECURE_PORT}, data in $STREAMKIT_STATE_DIR/broker-secure].",
)


_cluster_option = click.option(
    "--cluster",
    is_flag=True,
    help="The local cluster started with --nodes [data in $STREAMKIT_STATE_DIR/cluster].",
)


def _cluster(data_dir: Path | None, nodes: int = 3, port: int | None = None) -> LocalCluster:
    settings = Settings.from_env()
    return LocalCluster(
        (data_dir or settings.state_dir / "cluster").resolve(),
        settings.cache_dir,
        nodes=nodes,
        port=port or CLUSTER_PORT,
        java_home=settings.java_home,
    )


def _broker(data_dir: Path | None, port: int | None = None, secure: bool = False) -> LocalBroker:
    settings = Settings.from_env()
    default_dir = settings.state_dir / ("broker-secure" if secure else "broker")
    return LocalBroker(
        LocalBrokerConfig(
            data_dir=(data_dir or default_dir).resolve(),
            cache_dir=settings.cache_dir,
            port=port or (SECURE_PORT if secure else 9092),
            java_home=settings.java_home,
            secure=secure,
        )
    )


@click.group()
def broker() -> None:
    """Run a real Apache Kafka broker (KRaft) on 127.0.0.1 from Maven jars: one node, or a
    cluster of several (``--nodes 3``)."""


@broker.command()
@click.option(
    "--port", type=click.IntRange(1, 65535), default=None, help="[default: 9092, or 9093 secure]"
)
@_data_dir_option
@_secure_option
@click.option("--foreground", is_flag=True, help="Stay attached; the broker log goes here.")
@click.option(
    "--nodes",
    type=click.IntRange(1, 9),
    default=1,
    show_default=True,
    help="A cluster of N nodes, each its own process, on ports PORT..PORT+N-1 [default "
    f"port {CLUSTER_PORT}], replication factor min(N, 3), min.insync.replicas one less.",
)
@click.option("--timeout", type=float, default=90.0, show_default=True, help="Seconds to wait.")
def start(
    port: int | None,
    data_dir: Path | None,
    secure: bool,
    foreground: bool,
    nodes: int,
    timeout: float,
) -> None:
    """Start the broker (fetching its jars once) and wait until it answers."""
    if nodes > 1:
        if secure or foreground:
            raise click.UsageError("--nodes runs a plain cluster in the background")
        _start_cluster(_cluster(data_dir, nodes, port), timeout)
        return
    local = _broker(data_dir, port, secure)
    port = local.config.port
    before = local.status()
    if before.running and before.state is not None:
        click.echo(f"already {before.message}")
        _secure_note(local, before.state.bootstrap_servers)
        return
    if before.stale:
        click.echo(f"note: removing {before.message}", err=True)
    began = time.monotonic()
    if foreground:
        click.echo(f"starting Kafka on 127.0.0.1:{port} in the foreground (Ctrl-C stops it)")
        local.start(timeout=timeout, foreground=True)
        return
    state = local.start(timeout=timeout)
    fetched = " (jars fetched with Maven)" if local.jars_downloaded else ""
    click.echo(
        f"Kafka {state.kafka_version} running at {state.bootstrap_servers} "
        f"(pid {state.pid}) in {time.monotonic() - began:.1f}s{fetched}; log {state.log}"
    )
    _secure_note(local, state.bootstrap_servers)


def _start_cluster(cluster: LocalCluster, timeout: float) -> None:
    began = time.monotonic()
    states = cluster.start(timeout=timeout)
    click.echo(
        f"Kafka {states[0].kafka_version} cluster of {len(states)} nodes running at "
        f"{cluster.bootstrap_servers} (pids {', '.join(str(s.pid) for s in states)}) in "
        f"{time.monotonic() - began:.1f}s; data in {cluster.data_dir}"
    )


def _secure_note(local: LocalBroker, bootstrap: str) -> None:
    """How to connect to the secured broker (nothing for the plain one)."""
    files = local.config.secure_files
    if files is not None:
        env = files.write_client_env(bootstrap)
        click.echo(
            f"SASL_SSL with SCRAM-SHA-512, ACLs enforced; CA {files.ca}. "
            f"Connect as the admin user: source {env}"
        )


@broker.command()
@_data_dir_option
@_secure_option
@_cluster_option
def stop(data_dir: Path | None, secure: bool, cluster: bool) -> None:
    """Stop the broker (or every node of the cluster) started from this data directory."""
    if cluster:
        stopped = _cluster(data_dir).stop()
        pids = [str(s.state.pid) for s in stopped if s.running and s.state is not None]
        click.echo(f"stopped cluster nodes (pids {', '.join(pids)})" if pids else "not running")
        return
    local = _broker(data_dir, secure=secure)
    status = local.stop()
    if status.running and status.state is not None:
        click.echo(f"stopped broker pid {status.state.pid}")
    elif status.stale:
        click.echo(f"not running; removed {status.message}")
    else:
        click.echo(status.message)


@broker.command()
@_data_dir_option
@_secure_option
@_cluster_option
def status(data_dir: Path | None, secure: bool, cluster: bool) -> None:
    """Say whether the broker runs; exit 0 when it does, 3 when not, 4 on a stale state file."""
    if cluster:
        nodes = _cluster(data_dir).status()
        for number, node in enumerate(nodes, start=1):
            click.echo(f"node {number}: {node.message}")
        if not nodes or not all(n.running for n in nodes):
            sys.exit(4 if any(n.stale for n in nodes) else 3)
        return
    current = _broker(data_dir, secure=secure).status()
    click.echo(current.message)
    if not current.running:
        sys.exit(4 if current.stale else 3)
