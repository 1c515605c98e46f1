"""``streamkit replay reset | shadow``: reprocess a range of an app's input."""

from __future__ import annotations

import time

import click
from confluent_kafka.admin import AdminClient
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from streamkit.app import load_app
from streamkit.cli._kafka import kafka_settings
from streamkit.errors import ConfigError
from streamkit.ops.replay import (
    Redirect,
    ResetTarget,
    apply_reset,
    parse_bound,
    parse_datetime,
    plan_reset,
    shadow_replay,
    summary_lines,
)
from streamkit.settings import parse_duration

_app_option = click.option("--app", "target", required=True, metavar="MODULE[:APP]")
_topic_option = click.option(
    "--topic", "topics", multiple=True, help="Only this input topic (repeatable)."
)


@click.group()
def replay() -> None:
    """Reprocess a range of an app's input: move the group (reset) or run aside (shadow)."""


def _target(
    to_datetime: str | None,
    by_duration: str | None,
    to_offset: int | None,
    to_earliest: bool,
    to_latest: bool,
    shift_by: int | None,
) -> ResetTarget:
    chosen = [
        x
        for x in (
            to_datetime and ResetTarget("datetime", parse_datetime(to_datetime).timestamp()),
            by_duration and ResetTarget("duration", parse_duration(by_duration)),
            to_offset is not None and ResetTarget("offset", to_offset),
            to_earliest and ResetTarget("earliest"),
            to_latest and ResetTarget("latest"),
            shift_by is not None and ResetTarget("shift", shift_by),
        )
        if x
    ]
    if len(chosen) != 1:
        raise ConfigError(
            "give exactly one of --to-datetime, --by-duration, --to-offset, --to-earliest, "
            "--to-latest, --shift-by"
        )
    target = chosen[0]
    assert isinstance(target, ResetTarget)  # noqa: S101 - the filter keeps only targets
    return target


@replay.command()
@_app_option
@_topic_option
@click.option("--partitions", help="Only these partitions, e.g. 0,2,5.")
@click.option("--to-datetime", help="First record at or after this time (with a timezone).")
@click.option("--by-duration", help="Back by this long from now, e.g. 30m, 2h.")
@click.option("--to-offset", type=int, help="This offset in every chosen partition.")
@click.option("--to-earliest", is_flag=True)
@click.option("--to-latest", is_flag=True)
@click.option("--shift-by", type=int, help="Move by N records (negative: back).")
@click.option("--execute", is_flag=True, help="Apply the plan (default: dry-run).")
@click.option("--force", is_flag=True, help="Even while the group has active members.")
def reset(
    target: str,
    topics: tuple[str, ...],
    partitions: str | None,
    to_datetime: str | None,
    by_duration: str | None,
    to_offset: int | None,
    to_earliest: bool,
    to_latest: bool,
    shift_by: int | None,
    execute: bool,
    force: bool,
) -> None:
    """Move the app's committed offsets; prints the plan, applies it only with --execute."""
    app = load_app(target)
    where = _target(to_datetime, by_duration, to_offset, to_earliest, to_latest, shift_by)
    chosen = None
    if partitions:
        try:
            chosen = [int(p) for p in partitions.split(",")]
        except ValueError as exc:
            raise ConfigError(f"--partitions {partitions!r}: expected numbers like 0,2,5") from exc
    admin = AdminClient(kafka_settings().client_config())
    plan = plan_reset(app, admin, where, topics=list(topics) or None, partitions=chosen)
    click.echo(f"{'topic':<32}{'partition':>10}{'current':>12}{'new':>12}{'reprocess':>12}")
    for line in plan:
        current = "-" if line.current is None else str(line.current)
        click.echo(
            f"{line.topic:<32}{line.partition:>10}{current:>12}{line.new:>12}"
            f"{line.to_reprocess:>12}"
        )
    total = sum(max(0, x.to_reprocess) for x in plan)
    if not execute:
        click.echo(f"dry-run: {total} records would be reprocessed; add --execute to apply")
        return
    apply_reset(admin, app, plan, force=force)
    click.echo(f"group {app.group_id} moved: {total} records will be reprocessed")


@replay.command()
@_app_option
@_topic_option
@click.option("--from", "start", required=True, help="Offset, time (with timezone) or 15m ago.")
@click.option("--until", help="End (exclusive), same forms [default: the end now].")
@click.option("--suffix", help="Write outputs to <topic><SUFFIX> (created if missing).")
@click.option("--to-topic", help="Write every output to this one topic.")
@click.option("--discard", is_flag=True, help="Write nothing; report what would be written.")
def shadow(
    target: str,
    topics: tuple[str, ...],
    start: str,
    until: str | None,
    suffix: str | None,
    to_topic: str | None,
    discard: bool,
) -> None:
    """Run the processors over a range aside from the live group, outputs redirected."""
    if [suffix is not None, to_topic is not None, discard].count(True) != 1:
        raise ConfigError("give exactly one of --suffix, --to-topic, --discard")
    app = load_app(target)
    redirect = Redirect(suffix=suffix, topic=to_topic)
    columns = (
        TextColumn("replaying"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} records/s"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task("replay", total=None, rate="-")
        started = [0.0]

        def progress(done: int, total: int) -> None:
            now = time.monotonic()
            if not started[0]:
                started[0] = now
            rate = done / max(now - started[0], 1e-6)
            bar.update(task, completed=done, total=total, rate=f"{rate:,.0f}")

        summary = shadow_replay(
            app,
            kafka_settings(),
            parse_bound(start),
            parse_bound(until) if until else None,
            redirect,
            topics=list(topics) or None,
            progress=progress,
        )
    for line in summary_lines(summary, redirect):
        click.echo(line)
