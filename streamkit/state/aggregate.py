"""Aggregates: event-sourced state as a fold over an input topic.

``@app.aggregate(input=..., store=..., key=...)`` declares ``fold(state | None, event) ->
state | None`` (None deletes). Each change is written to the store's compacted changelog,
partitioned like the input, as part of the at-least-once unit: the input offset is
committed only after the changelog write is acknowledged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streamkit.state.dedupe import Dedupe
from streamkit.state.stores import Entry

__all__ = ["AggregateSpec", "fold"]


@dataclass(frozen=True)
class AggregateSpec:
    """A declared aggregate.

    Attributes:
        name: the fold function's name (unique among the app's processors).
        fold: ``(state | None, event) -> state | None``.
        input: the topic folded.
        store: the store's name.
        key: the event field holding the state key, a function of the event, or None for
            the record key. The input must be partitioned by this key: a record whose Kafka
            key is not its state key is dead-lettered, never folded into another
            partition's state.
        output: where each new state is emitted (the CQRS read side), if anywhere.
        ttl: seconds after which a key's state expires without updates (None: never).
        store_kind: ``memory`` (default) or ``rocksdb``.
        dedupe: fold an event at most once per event id within a window.
    """

    name: str
    fold: Callable[[Any, Any], Any]
    input: str
    store: str
    key: str | Callable[[Any], Any] | None
    output: str | None
    ttl: float | None
    store_kind: str
    dedupe: Dedupe | None = None

    def state_key(self, event: Any, record_key: Any) -> str | None:
        """The state key of an event (None when it has none)."""
        if self.key is None:
            value = record_key
        elif callable(self.key):
            value = self.key(event)
        else:
            value = event.get(self.key) if isinstance(event, dict) else None
        return None if value is None else str(value)


def fold(
    spec: AggregateSpec, entry: Entry | None, event: Any, offset: int, timestamp: int
) -> tuple[Entry | None, bool]:
    """Fold ``event`` (at input ``offset``) into a key's current ``entry``.

    Returns the new entry (None: deleted) and whether it was folded: a record at or before
    the entry's offset was folded before (a redelivery), and the entry stays as it is. The
    fold's exceptions propagate.
    """
    if entry is not None and entry.offset >= offset:
        return entry, False
    state = spec.fold(None if entry is None else entry.state, event)
    return (None if state is None else Entry(state, offset, timestamp)), True
