"""Entry point of the ``streamkit`` command: one group, one module per command family."""

from __future__ import annotations

import contextlib
import logging
import sys

import click
from confluent_kafka import KafkaException

from streamkit import __version__
from streamkit.cli.acl import acl
from streamkit.cli.broker import broker
from streamkit.cli.cdc import connect, postgres
from streamkit.cli.console import consume, produce
from streamkit.cli.dlq import dlq
from streamkit.cli.keyset import keyset
from streamkit.cli.replay import replay
from streamkit.cli.run import run
from streamkit.cli.schemas import schemas
from streamkit.cli.state import state
from streamkit.cli.status import status
from streamkit.cli.topics import topics
from streamkit.cli.workflow import workflow
from streamkit.errors import KafkaUnreachableError, StreamkitError
from streamkit.settings import KAFKA_LOGGER, Settings, remember_secrets, scrub


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="streamkit")
def cli() -> None:
    """streamkit: processor functions on Apache Kafka."""


cli.add_command(acl)
cli.add_command(broker)
cli.add_command(postgres)
cli.add_command(connect)
cli.add_command(produce)
cli.add_command(consume)
cli.add_command(run)
cli.add_command(topics)
cli.add_command(dlq)
cli.add_command(keyset)
cli.add_command(status)
cli.add_command(replay)
cli.add_command(schemas)
cli.add_command(state)
cli.add_command(workflow)


def main(argv: list[str] | None = None) -> None:
    """Run the command line; an error becomes one ``error:`` line: exit code 2 when Kafka
    cannot be reached, 1 for any other error."""
    with contextlib.suppress(StreamkitError):  # a bad setting is reported by the command
        remember_secrets(Settings.from_env().secret_values())
    # librdkafka's own lines (a refused connection is one line a second per broker) stay
    # out of the terminal: the command says in one line what went wrong.
    kafka_log = logging.getLogger(KAFKA_LOGGER)
    kafka_log.addHandler(logging.NullHandler())
    kafka_log.propagate = False
    try:
        cli.main(args=argv, prog_name="streamkit", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KafkaUnreachableError as exc:
        click.echo(f"error: {scrub(str(exc))}", err=True)
        sys.exit(2)
    except StreamkitError as exc:
        click.echo(f"error: {scrub(str(exc))}", err=True)
        sys.exit(1)
    except (KafkaException, TimeoutError) as exc:  # a client error no command translated
        reason = exc.args[0].str() if isinstance(exc, KafkaException) else "timed out"
        click.echo(f"error: Kafka: {scrub(reason)}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
