"""``streamkit workflow list|show|graph --app MODULE``: a workflow's instances and steps."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

import click
import orjson
from rich.console import Console
from rich.table import Table

from streamkit.app import load_app
from streamkit.cli._kafka import kafka_settings
from streamkit.ops.workflows import find_workflow, instances, mermaid, render
from streamkit.state.workflow import STATUSES

_APP = click.option("--app", "target", required=True, metavar="MODULE[:APP]")
_NAME = click.option("--workflow", "name", help="The workflow (when the app has several).")


@click.group()
def workflow() -> None:
    """Durable workflows (sagas): instances, their history, the step graph."""


def _when(ms: Any) -> str:
    if not isinstance(ms, int):
        return ""
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


@workflow.command("list")
@_APP
@_NAME
@click.option("--state", "status", type=click.Choice(STATUSES), help="Only instances in it.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document per line.")
def list_(target: str, name: str | None, status: str | None, as_json: bool) -> None:
    """The workflow's instances (from its store's changelog), by last update."""
    app = load_app(target)
    flow = find_workflow(app, name)
    found = instances(app, kafka_settings().client_config(), flow, status)
    if as_json:
        for inst in found:
            sys.stdout.buffer.write(
                orjson.dumps(
                    {
                        k: inst.get(k)
                        for k in ("id", "status", "step", "attempt", "started", "updated", "error")
                    }
                )
                + b"\n"
            )
        return
    table = Table(
        title=f"workflow {flow.name}: {len(found)} instance(s)" + (f" {status}" if status else "")
    )
    for column in ("id", "status", "step", "updated (UTC)", "error"):
        table.add_column(column)
    for inst in found:
        table.add_row(
            str(inst.get("id")),
            str(inst.get("status")),
            str(inst.get("step") or ""),
            _when(inst.get("updated")),
            str(inst.get("error") or ""),
        )
    Console(soft_wrap=True).print(table)


@workflow.command()
@_APP
@_NAME
@click.argument("instance")
def show(target: str, name: str | None, instance: str) -> None:
    """Print INSTANCE as JSON: its status, current step, data and history; exit 3 when the
    workflow has no such instance."""
    app = load_app(target)
    flow = find_workflow(app, name)
    found = [
        i
        for i in instances(app, kafka_settings().client_config(), flow)
        if str(i.get("id")) == instance
    ]
    if not found:
        click.echo(f"workflow {flow.name} has no instance {instance!r}", err=True)
        sys.exit(3)
    sys.stdout.buffer.write(orjson.dumps(found[0], option=orjson.OPT_INDENT_2) + b"\n")


@workflow.command()
@_APP
@_NAME
@click.option(
    "--image",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also draw it to this file (.png, .svg) with Graphviz.",
)
def graph(target: str, name: str | None, image: Path | None) -> None:
    """Print the step graph as Mermaid text (and draw it with Graphviz, with --image)."""
    flow = find_workflow(load_app(target), name)
    click.echo(mermaid(flow), nl=False)
    if image is not None:
        render(flow, image)
        click.echo(f"drew {image}", err=True)
