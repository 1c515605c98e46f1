"""Idempotent consumers: run a processor once per event id within a window.

``@app.processor(..., dedupe=Dedupe(field="event_id", window="1h"))`` (or
``@app.aggregate(..., dedupe=...)``) remembers each id (taken from an event field or a
header) in a store backed by a compacted changelog (restored like any store), so a
redelivered or re-sent event does not run the processor's side effects, or fold, twice.
An id is remembered when the processor succeeds; a record seen again within ``window`` is
skipped and its outputs are not produced again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from streamkit.errors import ConfigError
from streamkit.settings import parse_duration

__all__ = ["Dedupe"]


@dataclass(frozen=True)
class Dedupe:
    """Where an event's id is, and how long it is remembered.

    Attributes:
        field: the event field holding the id (for dict events).
        header: or the header holding it.
        window: how long an id is remembered (``"1h"``, or seconds).
    """

    field: str | None = None
    header: str | None = None
    window: str | float = "1h"

    def __post_init__(self) -> None:
        if (self.field is None) == (self.header is None):
            raise ConfigError("Dedupe needs exactly one of field= or header=")
        if self.seconds <= 0:
            raise ConfigError("Dedupe window must be positive")

    @property
    def seconds(self) -> float:
        """The window in seconds."""
        return self.window if isinstance(self.window, int | float) else parse_duration(self.window)

    def event_id(
        self, event: Any, headers: Sequence[tuple[str, bytes | None]] | None
    ) -> str | None:
        """The id of an event (None: it has none and is always processed)."""
        if self.field is not None:
            value = event.get(self.field) if isinstance(event, dict) else None
            return None if value is None else str(value)
        found = None
        for name, raw in headers or ():
            if name == self.header and raw is not None:
                found = raw.decode("utf-8", "replace")
        return found
