"""``python -m streamkit`` runs the ``streamkit`` command."""

from streamkit.cli import main

if __name__ == "__main__":
    main()
