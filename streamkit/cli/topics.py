"""``streamkit topics create | list | describe``: create what an app declares (or plain
topics), check what exists, show roles, policies and lag."""

from __future__ import annotations

import click

from streamkit.app import load_app
from streamkit.cli._kafka import kafka_settings
from streamkit.engines.kafka.offsets import committed_offsets, offsets_for, partitions_of
from streamkit.errors import ConfigError, KafkaOperationError
from streamkit.ops.admin import (
    TopicSpec,
    admin_client,
    cleanup_policies,
    create_topics,
    describe_topics,
)
from streamkit.runtime.serdes import app_serdes
from streamkit.settings import Settings
from streamkit.topic import CLUSTER_DEFAULT
from streamkit.topology import Topology


@click.group()
def topics() -> None:
    """Topics of an app."""


@topics.command()
@click.argument("target", metavar="[MODULE[:APP]]", required=False)
@click.option("--topic", "names", multiple=True, help="A plain topic to create (repeatable).")
@click.option(
    "--partitions",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Partitions of each --topic.",
)
@click.option(
    "--replication-factor",
    type=click.IntRange(1),
    default=None,
    help="Replicas of each --topic [default: the cluster's default.replication.factor].",
)
@click.option(
    "--config",
    "configs",
    multiple=True,
    metavar="KEY=VALUE",
    help="A topic config of each --topic, e.g. cleanup.policy=compact (repeatable).",
)
def create(
    target: str | None,
    names: tuple[str, ...],
    partitions: int,
    replication_factor: int | None,
    configs: tuple[str, ...],
) -> None:
    """Create every topic MODULE's app declares (and its DLQ, parked, retry and changelog
    topics), and/or plain topics named with --topic; report any that exist differently.

    The app's contracts are loaded first, so a schema that does not exist is reported
    before anything is created. Idempotent: existing topics with the expected partition
    count are left alone. A topic that exists with another partition count is reported,
    not changed, and the command exits 1.
    """
    if not target and not names:
        raise click.UsageError("name an app (MODULE) or topics (--topic NAME)")
    config = dict(_pair(c) for c in configs)
    replicas = CLUSTER_DEFAULT if replication_factor is None else replication_factor
    expected = [TopicSpec(n, partitions, replicas, config) for n in names]
    label = "requested"
    if target:
        app = load_app(target)
        app.validate()
        app_serdes(app, Settings.from_env())  # a bad contract fails here, before creating
        label = f"app {app.name} declares"
        expected += [
            TopicSpec(t.name, t.partitions, t.replication_factor, t.config)
            for t in Topology(app).topics().values()
        ]
    admin = admin_client(kafka_settings().client_config())
    existing = describe_topics(admin)
    mismatches = []
    wanted = []
    for spec in expected:
        have = existing.get(spec.name)
        if have is None:
            wanted.append(spec)
        elif have != spec.partitions:
            mismatches.append(f"{spec.name} has {have} partitions; {label} {spec.partitions}")
        else:
            click.echo(f"exists   {spec.name} ({have} partitions)")
    for name, outcome in create_topics(admin, wanted).items():
        made = next(s for s in wanted if s.name == name)
        click.echo(f"{outcome:<8} {name} ({made.partitions} partitions)")
    if mismatches:
        raise KafkaOperationError("; ".join(mismatches))


def _pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--config {text!r}: expected KEY=VALUE, e.g. retention.ms=86400000")
    return key.strip(), value.strip()


def _describe(target: str, with_lag: bool) -> None:
    app = load_app(target)
    app.validate()  # an undeclared topic or a bad table: one line, before Kafka is asked
    app_serdes(app, Settings.from_env())  # an unknown contract likewise
    topology = Topology(app)
    config = kafka_settings().client_config()
    admin = admin_client(config)
    existing = describe_topics(admin)
    names = list(topology.topics())
    policies = cleanup_policies(admin, [n for n in names if n in existing])
    roles = {name: ", ".join(found) for name, found in topology.roles().items()}
    click.echo(f"{'topic':<48}{'role':<20}{'partitions':>11}  {'cleanup':<10}")
    for name in names:
        partitions = str(existing[name]) if name in existing else "missing"
        click.echo(
            f"{name:<48}{roles.get(name, ''):<20}{partitions:>11}  {policies.get(name, '-'):<10}"
        )
    if not with_lag:
        return
    inputs = [n for n in topology.inputs() if n in existing]
    parts = partitions_of(admin, inputs)
    committed = committed_offsets(admin, app.group_id, parts)
    ends = offsets_for(admin, parts, "latest")
    click.echo(f"\ngroup {app.group_id}")
    click.echo(f"{'topic':<48}{'partition':>10}{'committed':>12}{'end':>12}{'lag':>10}")
    for tp in parts:
        done = committed[tp]
        lag = ends[tp] - (done or 0)
        shown = "-" if done is None else str(done)
        click.echo(f"{tp[0]:<48}{tp[1]:>10}{shown:>12}{ends[tp]:>12}{lag:>10}")


@topics.command("list")
@click.argument("target", metavar="MODULE[:APP]", required=False)
@click.option("--app", "app_target", metavar="MODULE[:APP]", help="Same as the argument.")
def list_(target: str | None, app_target: str | None) -> None:
    """Every topic the app reads and writes, its DLQs and retry topics."""
    _describe(_one(target, app_target), with_lag=False)


@topics.command()
@click.argument("target", metavar="MODULE[:APP]", required=False)
@click.option("--app", "app_target", metavar="MODULE[:APP]", help="Same as the argument.")
def describe(target: str | None, app_target: str | None) -> None:
    """The app's topics with partitions and cleanup policy, and the group's lag."""
    _describe(_one(target, app_target), with_lag=True)


def _one(target: str | None, app_target: str | None) -> str:
    chosen = target or app_target
    if not chosen:
        raise click.UsageError("name the app: MODULE or --app MODULE")
    return chosen
