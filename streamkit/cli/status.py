"""``streamkit status --app MODULE``: the group's members, partitions, lag and rates."""

from __future__ import annotations

import time

import click
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from streamkit.app import load_app
from streamkit.cli._kafka import kafka_settings
from streamkit.ops.status import GroupStatus, group_status, with_rates


def _render(status: GroupStatus) -> Group:
    members = Table(title=f"group {status.group} ({status.state}, {len(status.members)} members)")
    members.add_column("member")
    members.add_column("partitions", justify="right")
    members.add_column("assignment")
    for name, parts in sorted(status.members.items()):
        members.add_row(name, str(len(parts)), ", ".join(f"{t}[{p}]" for t, p in parts))
    partitions = Table(title=f"lag {status.total_lag}")
    for column in ("topic", "partition", "member", "committed", "end", "lag", "records/s"):
        partitions.add_column(column, justify="left" if column in {"topic", "member"} else "right")
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
    current = group_status(app, config)
    if once:
        console.print(_render(current))
        return
    with Live(_render(current), console=console, refresh_per_second=4) as live:
        while True:
            time.sleep(interval)
            previous, current = current, group_status(app, config)
            current = with_rates(current, previous)
            live.update(_render(current))
