"""Aggregates: event-sourced state as a fold over an input topic.

``@app.aggregate(input=..., store=..., key=...)`` declares ``fold(state | None, event) ->
state | None`` (None deletes). Each change is written to the compacted changelog
``<app>-<store>-changelog``, partitioned like the input, as part of the at-least-once
unit: the input offset is committed only after the changelog write is acknowledged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streamkit.errors import ConfigError

__all__ = ["AggregateSpec", "changelog_topic"]


def changelog_topic(app: str, store: str) -> str:
    """The changelog topic of ``store`` (Kafka Streams' naming)."""
    return f"{app}-{store}-changelog"


@dataclass(frozen=True)
class AggregateSpec:
    """A declared aggregate.

    Attributes:
        name: the fold function's name (unique among the app's processors).
        fold: ``(state | None, event) -> state | None``.
        input: the topic folded.
        store: the store's name.
        key: the event field holding the state key, a function of the event, or None for
            the record key. The input must be partitioned by this key.
        output: where each new state is emitted (the CQRS read side), if anywhere.
        ttl: seconds after which a key's state expires without updates (None: never).
        store_kind: ``memory`` (default) or ``rocksdb``.
    """

    name: str
    fold: Callable[[Any, Any], Any]
    input: str
    store: str
    key: str | Callable[[Any], Any] | None
    output: str | None
    ttl: float | None
    store_kind: str

    def state_key(self, event: Any, record_key: Any) -> str | None:
        """The state key of an event (None when it has none)."""
        if self.key is None:
            value = record_key
        elif callable(self.key):
            value = self.key(event)
        else:
            value = event.get(self.key) if isinstance(event, dict) else None
        return None if value is None else str(value)

    @staticmethod
    def validate_kind(kind: str) -> str:
        """Refuse an unknown store kind at declaration."""
        if kind not in {"memory", "rocksdb"}:
            raise ConfigError(f"store kind {kind!r}: expected memory or rocksdb")
        return kind
