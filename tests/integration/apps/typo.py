"""A test app whose topic names a contract that does not exist (a typo)."""

import os
from pathlib import Path

from streamkit import App

app = App("typo", schemas=Path(__file__).resolve().parents[3] / "schemas")
PLACED = app.topic(os.environ.get("TYPO_TOPIC", "typo-placed"), value="OrderPlacd")


@app.processor(input=PLACED)
def nothing(order: dict[str, object]) -> None:
    """Never runs: the app cannot start."""
