"""Aggregates: event-sourced state as a fold over an input topic.

``@app.aggregate(input=..., store=..., key=...)`` declares ``fold(state | None, event) ->
state | None`` (None deletes), or ``fold(state, event, ctx)``. With ``on_timer=`` the fold
sets timers for its state key (``ctx.timers``); when one fires, ``on_timer(state, timer)``
(or ``(state, timer, ctx)``) returns the key's next state, written like a fold's. Each
change is written to the store's compacted changelog, partitioned like the input, as part
of the at-least-once unit: the input offset is committed only after the changelog write is
acknowledged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streamkit.state.dedupe import Dedupe
from streamkit.state.stores import Entry, state_key

__all__ = ["SOURCE_HEADER", "AggregateSpec", "Routed", "TooLate", "fire", "fold", "source_of"]

SOURCE_HEADER = "__streamkit.repartition.source"
"""The header a repartitioned record carries: ``topic/partition/offset`` of its source."""


def source_of(headers: Any) -> tuple[str, int] | None:
    """The source (``topic/partition``, offset) a repartitioned record carries, if any."""
    for name, value in headers:
        if name == SOURCE_HEADER and value:
            origin, _, offset = value.decode().rpartition("/")
            return origin, int(offset)
    return None


class TooLate(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised by a fold for a record it comes too late to fold (a join's, once the stream
    time has passed its window): the record goes to the store's late topic."""

    def __init__(self, window_end: int, watermark: int) -> None:
        super().__init__(f"too late: window end {window_end}, watermark {watermark}")
        self.window_end = window_end
        self.watermark = watermark


@dataclass(frozen=True, slots=True)
class Routed:
    """A projection to one of an aggregate's other ``outputs``, keyed by ``key``."""

    topic: str
    key: str
    value: Any


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
        on_timer: ``(state | None, timer) -> state | None`` (or with a third, ctx,
            parameter), called when a timer the fold set fires.
        takes_context: whether ``fold`` takes a third, ctx, parameter.
        timer_takes_context: whether ``on_timer`` takes a third, ctx, parameter.
        project: what of a new state goes to ``output`` (a list of values; None: the
            state itself), for aggregates that emit something else than their state; a
            :class:`Routed` value goes to its own topic instead.
        outputs: the other topics its projections may be routed to.
        report: what a new state says it ran, (name, outcome, seconds) per call, for
            metrics (a workflow's steps).
        late: whether the fold refuses records as too late (raising :class:`TooLate`):
            they go to the store's late topic ``<app>-<store>-late``.
    """

    name: str
    fold: Callable[..., Any]
    input: str
    store: str
    key: str | Callable[[Any], Any] | None
    output: str | None
    ttl: float | None
    store_kind: str
    dedupe: Dedupe | None = None
    on_timer: Callable[..., Any] | None = None
    takes_context: bool = False
    timer_takes_context: bool = False
    project: Callable[[Any], list[Any]] | None = None
    outputs: tuple[str, ...] = ()
    report: Callable[[Any], list[tuple[str, str, float]]] | None = None
    late: bool = False

    def projections(self, state: Any) -> list[Any]:
        """The values a new ``state`` sends to the output."""
        return [state] if self.project is None else self.project(state)

    def state_key(self, event: Any, record_key: Any) -> str | None:
        """The state key of an event (None when it has none)."""
        return state_key(self.key, event, record_key)


def fold(
    spec: AggregateSpec,
    entry: Entry | None,
    event: Any,
    offset: int,
    timestamp: int,
    ctx: Any = None,
    source: tuple[str, int] | None = None,
) -> tuple[Entry | None, bool]:
    """Fold ``event`` (at input ``offset``) into a key's current ``entry`` (handing the
    fold ``ctx`` when it takes one).

    Returns the new entry (None: deleted) and whether it was folded: a record at or before
    the entry's offset was folded before (a redelivery), and the entry stays as it is; so
    was a repartitioned record whose ``source`` (``topic/partition``, offset) is at or
    before the highest folded of that source partition (the router wrote it twice). The
    fold's exceptions propagate.
    """
    sources = None if entry is None else entry.sources
    if entry is not None and entry.offset >= offset:
        return entry, False
    if source is not None:
        origin, at = source
        if sources is not None and sources.get(origin, -1) >= at:
            return entry, False
        sources = {**(sources or {}), origin: at}
    current = None if entry is None else entry.state
    state = spec.fold(current, event, ctx) if spec.takes_context else spec.fold(current, event)
    return (None if state is None else Entry(state, offset, timestamp, sources)), True


def fire(
    spec: AggregateSpec, entry: Entry | None, timer: Any, now_ms: int, ctx: Any = None
) -> Entry | None:
    """A key's entry after its ``timer`` fired: what ``on_timer`` makes of its state (None:
    deleted). The entry keeps the offset of the last record folded, so a redelivery of
    that record is still recognised; its timestamp (for the TTL) is ``now_ms``."""
    assert spec.on_timer is not None  # noqa: S101 - only such aggregates have timers
    current = None if entry is None else entry.state
    if spec.timer_takes_context:
        state = spec.on_timer(current, timer, ctx)
    else:
        state = spec.on_timer(current, timer)
    if state is None:
        return None
    if entry is None:
        return Entry(state, -1, now_ms)
    return Entry(state, entry.offset, now_ms, entry.sources)
