"""``streamkit keyset create | rotate``: the Tink keyset that encrypts contract fields
tagged PII (see :mod:`streamkit.contracts.encryption`)."""

from __future__ import annotations

from pathlib import Path

import click

from streamkit.contracts.encryption import create_keyset, rotate_keyset


@click.group()
def keyset() -> None:
    """Keysets for fields tagged PII (point STREAMKIT_KEYSET at one)."""


@keyset.command("create")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def create_command(path: Path) -> None:
    """Write a new cleartext AES-256-GCM keyset to PATH (mode 0600; for development:
    in production, encrypt it with a KMS key and set STREAMKIT_KEYSET_KMS_URI)."""
    create_keyset(path)
    click.echo(f"created keyset {path}; use it with STREAMKIT_KEYSET={path}")


@keyset.command("rotate")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def rotate_command(path: Path) -> None:
    """Add a new primary key to the keyset at PATH; older keys still decrypt."""
    key_id = rotate_keyset(path)
    click.echo(f"rotated {path}: new values are encrypted with key {key_id}")
