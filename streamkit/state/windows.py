"""Windows: per key, a fold over the events of a span of event time.

``@app.window(...)`` declares a :class:`WindowSpec`. Four kinds:

* **tumbling** (``size``): ``[start, start + size)``, one window per record;
* **hopping** (``size``, ``hop``): windows of ``size`` starting every ``hop``; a record is
  in every window that covers it;
* **sliding** (``size``, ``sliding=True``): a window ``[t - size, t]`` ending at each
  record's time ``t``, holding the records of the key within ``size`` before it;
* **session** (``gap``): a key's records with no more than ``gap`` between them; a
  record that bridges two sessions merges them.

Three forms of the function: ``fold`` ``(state | None, event) -> state``, ``reduce``
``(a, b) -> c`` (the first event is the first state), ``collect`` (the events, or what
``fn(event)`` keeps of each, as a list; bounded by ``max_bytes``).

Event time is the record's timestamp unless ``timestamp=`` names a field (milliseconds
or a datetime) or is a function of the event. A partition's stream time is the highest
event time seen; a window closes when the stream time minus ``grace`` passes its end
(for a session: its last record plus ``gap``), or, with ``close_idle``, when that much
wall-clock time passes without a record for it. A record whose windows are all closed is
late: it goes to the late topic, never silently dropped.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streamkit.errors import ConfigError
from streamkit.state.stores import state_key

__all__ = ["FORMS", "KINDS", "WindowSpec"]

KINDS = ("tumbling", "hopping", "sliding", "session")
FORMS = ("fold", "reduce", "collect")
EMITS = ("final", "update")


@dataclass(frozen=True)
class WindowSpec:
    """A declared window (see the module docstring; durations in milliseconds).

    Attributes:
        name: the function's name (unique among the app's processors).
        fn: the fold, the reduce, or (collect) what to keep of an event (None: the event).
        input: the topic windowed.
        store: the store of its windows (changelog ``<app>-<store>-changelog``).
        key: the event field holding the window key, a function, or None (record key).
        output: where results go.
        size_ms: window length (tumbling, hopping, sliding).
        hop_ms: advance of hopping windows (0: tumbling).
        gap_ms: inactivity gap of session windows.
        sliding: windows end at each record's time.
        grace_ms: how long after its end a window still takes records.
        emit: ``final`` (one result when it closes) or ``update`` (a result per change).
        close_idle_ms: close a window after this much wall-clock time without a record.
        form: ``fold``, ``reduce`` or ``collect``.
        timestamp: event-time field or function (None: the record timestamp).
        merge: ``(a, b) -> c`` to merge two sessions' fold states.
        result: ``(key, start, end, state) -> value`` shaping a result (default: a dict of
            key, start, end and value).
        max_bytes: the largest window state (encoded), below the producer's limit.
        store_kind: ``memory`` or ``rocksdb``.
    """

    name: str
    fn: Callable[..., Any] | None
    input: str
    store: str
    key: str | Callable[[Any], Any] | None
    output: str | None
    size_ms: int = 0
    hop_ms: int = 0
    gap_ms: int = 0
    sliding: bool = False
    grace_ms: int = 0
    emit: str = "final"
    close_idle_ms: int | None = None
    form: str = "fold"
    timestamp: str | Callable[[Any], Any] | None = None
    merge: Callable[[Any, Any], Any] | None = None
    result: Callable[[str, int, int, Any], Any] | None = None
    max_bytes: int = 900_000
    store_kind: str = "memory"

    def __post_init__(self) -> None:
        label = f"window {self.name}"
        if self.form not in FORMS:
            raise ConfigError(f"{label}: form {self.form!r}, expected one of {', '.join(FORMS)}")
        if self.emit not in EMITS:
            raise ConfigError(f"{label}: emit {self.emit!r}, expected final or update")
        if self.form != "collect" and self.fn is None:
            raise ConfigError(f"{label}: a {self.form} needs a function")
        if bool(self.gap_ms) == bool(self.size_ms):
            raise ConfigError(f"{label}: give size= (tumbling, hopping, sliding) or gap= (session)")
        if self.hop_ms and (self.sliding or self.hop_ms > self.size_ms or self.hop_ms <= 0):
            raise ConfigError(f"{label}: hop= must be positive and at most size=")
        if self.gap_ms and self.sliding:
            raise ConfigError(f"{label}: a session window is not sliding")
        if self.kind == "session" and self.form == "fold" and self.merge is None:
            raise ConfigError(
                f"{label}: a session window with a fold needs merge=(a, b) -> state, to join "
                "two sessions a record bridges"
            )
        if self.grace_ms < 0 or (self.close_idle_ms is not None and self.close_idle_ms <= 0):
            raise ConfigError(f"{label}: grace= must be >= 0 and close_idle= positive")

    @property
    def kind(self) -> str:
        """``tumbling``, ``hopping``, ``sliding`` or ``session``."""
        if self.gap_ms:
            return "session"
        if self.sliding:
            return "sliding"
        return "hopping" if self.hop_ms and self.hop_ms != self.size_ms else "tumbling"

    # -- what a record is -----------------------------------------------------------------
    def state_key(self, event: Any, record_key: Any) -> str | None:
        """The window key of an event (None when it has none)."""
        return state_key(self.key, event, record_key)

    def event_time(self, event: Any, record_timestamp: int) -> int:
        """The event time of a record, in milliseconds."""
        if self.timestamp is None:
            return record_timestamp
        if callable(self.timestamp):
            value = self.timestamp(event)
        else:
            value = event.get(self.timestamp) if isinstance(event, dict) else None
        if isinstance(value, dt.datetime):
            return int(value.timestamp() * 1000)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return int(value)
        raise ValueError(
            f"window {self.name}: event time {self.timestamp!r} is {value!r}, not milliseconds "
            "or a datetime"
        )

    def spans(self, t: int) -> list[tuple[int, int]]:
        """The ``[start, end)`` of each tumbling or hopping window holding time ``t``."""
        if not self.hop_ms or self.hop_ms == self.size_ms:  # tumbling: one window
            start = t - t % self.size_ms
            return [(start, start + self.size_ms)]
        step = self.hop_ms
        last = t - t % step
        found = []
        start = last
        while start > t - self.size_ms:
            found.append((start, start + self.size_ms))
            start -= step
        return sorted(found)

    def closes_at(self, end: int) -> int:
        """The stream time at which a window ending at ``end`` closes."""
        if self.kind == "session":
            return end + self.gap_ms + self.grace_ms + 1
        if self.kind == "sliding":
            return end + self.grace_ms + 1
        return end + self.grace_ms

    # -- folding --------------------------------------------------------------------------
    def add(self, state: Any, event: Any, first: bool) -> Any:
        """``state`` with ``event`` folded in (``first``: the window's first event)."""
        if self.form == "fold":
            assert self.fn is not None  # noqa: S101 - checked at declaration
            return self.fn(None if first else state, event)
        if self.form == "reduce":
            assert self.fn is not None  # noqa: S101 - checked at declaration
            return event if first else self.fn(state, event)
        item = event if self.fn is None else self.fn(event)
        return [item] if first else [*state, item]

    def combine(self, a: Any, b: Any) -> Any:
        """Two sessions' states as one (``a`` the earlier)."""
        if self.form == "collect":
            return [*a, *b]
        if self.form == "reduce":
            assert self.fn is not None  # noqa: S101 - checked at declaration
            return self.fn(a, b)
        assert self.merge is not None  # noqa: S101 - checked at declaration
        return self.merge(a, b)

    def over(self, events: list[Any]) -> Any:
        """The state of a window holding ``events`` (sliding windows recompute it)."""
        state: Any = None
        for n, event in enumerate(events):
            state = self.add(state, event, n == 0)
        return state

    def value(self, key: str, start: int, end: int, state: Any) -> Any:
        """What a window's result carries: ``result(...)``, or key, start, end and value."""
        if self.result is not None:
            return self.result(key, start, end, state)
        return {"key": key, "start": start, "end": end, "value": state}
