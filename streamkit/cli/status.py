"""``streamkit status --app MODULE``: the group's members, partitions, lag and rates."""

from __future__ import annotations

import time

import click
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from streamkit.app import load_app
from streamkit.cli._kafka import kafka_settings
from streamkit.ops.status import GroupStatus, group_status, with_rates
from streamkit.runtime.queues import is_queue_app

_SHARE_GROUP = (
    "share group {group}: records are acknowledged one by one and it commits no offsets; "
    "its lag is not readable through confluent-kafka's admin client yet "
    "(kafka-share-groups.sh --describe --group {group} shows it)"
)


def _render(status: GroupStatus, queue: bool = False) -> Group:
    members = Table(title=f"group {status.group} ({status.state}, {len(status.members)} members)")
    members.add_column("member", overflow="fold")
    members.add_column("partitions", justify="right")
    members.add_column("assignment", overflow="fold")
    for name, parts in sorted(status.members.items()):
        members.add_row(name, str(len(parts)), ", ".join(f"{t}[{p}]" for t, p in parts))
    if queue:
        partitions = Table(title="records in the inputs")
        partitions.add_column("topic", overflow="fold")
        partitions.add_column("partition", justify="right")
        partitions.add_column("end", justify="right")
        for p in status.partitions:
            partitions.add_row(p.topic, str(p.partition), str(p.end))
        return Group(Text(_SHARE_GROUP.format(group=status.group)), partitions)
    partitions = Table(title=f"lag {status.total_lag}")
    for column in ("topic", "partition", "member", "committed", "end", "lag", "records/s"):
        if column in {"topic", "member"}:  # names wrap, never cut: two must not look alike
            partitions.add_column(column, overflow="fold")
        else:
            partitions.add_column(column, justify="right")
    for p in status.partitions:
        partitions.add_row(
            p.topic,
            str(p.partition),
            p.member,
            "-" if p.committed is None else str(p.committed),
            str(p.end),
            str(p.lag),
            "-" if p.rate is None else f"{p.rate:,.1f}",
        )
    return Group(members, partitions)


@click.command()
@click.option("--app", "target", required=True, metavar="MODULE[:APP]")
@click.option("--once", is_flag=True, help="Print once and exit (for scripts).")
@click.option("--interval", type=click.FloatRange(0.5), default=2.0, show_default=True)
def status(target: str, once: bool, interval: float) -> None:
    """Members of the app's group, partitions per member, lag and rates (Ctrl-C stops)."""
    app = load_app(target)
    config = kafka_settings().client_config()
    console = Console()
    queue = is_queue_app(app)
    current = group_status(app, config)
    if once:
        console.print(_render(current, queue))
        return
    with Live(_render(current, queue), console=console, refresh_per_second=4) as live:
        while True:
            time.sleep(interval)
            previous, current = current, group_status(app, config)
            current = with_rates(current, previous)
            live.update(_render(current, queue))
