"""Entry point of the ``streamkit`` command: one group, one module per command family."""

from __future__ import annotations

import contextlib
import sys

import click

from streamkit import __version__
from streamkit.cli.broker import broker
from streamkit.cli.console import consume, produce
from streamkit.cli.dlq import dlq
from streamkit.cli.replay import replay
from streamkit.cli.run import run
from streamkit.cli.schemas import schemas
from streamkit.cli.state import state
from streamkit.cli.status import status
from streamkit.cli.topics import topics
from streamkit.errors import StreamkitError
from streamkit.observability.logs import remember_secrets, scrub
from streamkit.settings import Settings


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="streamkit")
def cli() -> None:
    """streamkit: processor functions on Apache Kafka."""


cli.add_command(broker)
cli.add_command(produce)
cli.add_command(consume)
cli.add_command(run)
cli.add_command(topics)
cli.add_command(dlq)
cli.add_command(status)
cli.add_command(replay)
cli.add_command(schemas)
cli.add_command(state)


def main(argv: list[str] | None = None) -> None:
    """Run the command line; a streamkit error becomes one ``error:`` line and exit code 1."""
    with contextlib.suppress(StreamkitError):  # a bad setting is reported by the command
        remember_secrets(Settings.from_env().secret_values())
    try:
        cli.main(args=argv, prog_name="streamkit", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except StreamkitError as exc:
        click.echo(f"error: {scrub(str(exc))}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
