"""``streamkit acl plan``: the least-privilege ACLs of an app, printed or created."""

from __future__ import annotations

from typing import TextIO

import click

from streamkit.app import load_app
from streamkit.cli._kafka import kafka_settings
from streamkit.ops.acl import create_acls, plan, set_scram_user
from streamkit.ops.admin import admin_client


@click.group()
def acl() -> None:
    """Access control for an app's principal."""


@acl.command("plan")
@click.option("--app", "target", required=True, metavar="MODULE[:APP]", help="The app.")
@click.option("--principal", required=True, metavar="User:NAME", help="Who runs the app's workers.")
@click.option("--execute", is_flag=True, help="Create the ACLs (as the configured client).")
def plan_command(target: str, principal: str, execute: bool) -> None:
    """Print exactly the ACLs the app's workers need (see streamkit.ops.acl); with
    --execute, create them through the admin API."""
    acls = plan(load_app(target), principal)
    for entry in acls:
        click.echo(str(entry))
    if execute:
        settings = kafka_settings()
        create_acls(admin_client(settings.client_config()), acls)
        click.echo(f"created {len(acls)} ACLs for {principal}")


@acl.command("user")
@click.argument("name")
@click.option(
    "--password-file",
    type=click.File("r"),
    default="-",
    show_default=True,
    help="Where the password is read from (- : standard input).",
)
def user_command(name: str, password_file: TextIO) -> None:
    """Create the SCRAM-SHA-512 user NAME, or change its password (read, never printed)."""
    password = password_file.read().strip()
    if not password:
        raise click.UsageError("the password is empty")
    settings = kafka_settings()
    set_scram_user(admin_client(settings.client_config()), name, password)
    click.echo(f"SCRAM-SHA-512 credentials set for User:{name}")
