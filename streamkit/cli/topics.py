"""``streamkit topics create MODULE``: create what an app declares, check what exists."""

from __future__ import annotations

import click

from streamkit.app import load_app
from streamkit.errors import KafkaOperationError
from streamkit.ops.admin import TopicSpec, admin_client, create_topics, describe_topics
from streamkit.settings import Settings


@click.group()
def topics() -> None:
    """Topics of an app."""


@topics.command()
@click.argument("target", metavar="MODULE[:APP]")
def create(target: str) -> None:
    """Create every topic MODULE's app declares (and its DLQ, parked and retry topics);
    report any that exist differently.

    Idempotent: existing topics with the declared partition count are left alone. A
    topic that exists with another partition count is reported, not changed, and the
    command exits 1.
    """
    app = load_app(target)
    admin = admin_client(Settings.from_env().client_config())
    existing = describe_topics(admin)
    mismatches = []
    wanted = []
    for topic in app.all_topics().values():
        have = existing.get(topic.name)
        if have is None:
            wanted.append(
                TopicSpec(topic.name, topic.partitions, topic.replication_factor, topic.config)
            )
        elif have != topic.partitions:
            mismatches.append(
                f"{topic.name} has {have} partitions; app {app.name} declares {topic.partitions}"
            )
        else:
            click.echo(f"exists   {topic.name} ({have} partitions)")
    for name, outcome in create_topics(admin, wanted).items():
        spec = next(s for s in wanted if s.name == name)
        click.echo(f"{outcome:<8} {name} ({spec.partitions} partitions)")
    if mismatches:
        raise KafkaOperationError("; ".join(mismatches))
