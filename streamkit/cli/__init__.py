"""The ``streamkit`` command."""

from streamkit.cli.main import cli, main

__all__ = ["cli", "main"]
