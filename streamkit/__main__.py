"""``python -m streamkit`` runs the ``streamkit`` command."""

from streamkit.cli import main

main()
