"""Durable timers: a processor schedules a timer per key; it fires once, after a restart
too.

A processor's timers live in its own store (``<processor>-timers``, partitioned like its
input, in a compacted changelog like every store): scheduling or cancelling is a store
change written with the record that made it, and a partition's timers are restored with
it. An **event-time** timer fires when the partition's stream time (the highest record
timestamp seen) reaches it; a **wall-clock** timer when the worker's clock does. The index
of what is due next is rebuilt from the store after a restore or a rollback.
"""

from __future__ import annotations

import datetime as dt
import heapq
from dataclasses import dataclass
from typing import Any

from streamkit.errors import ConfigError
from streamkit.settings import parse_duration
from streamkit.state.partition import PartitionState
from streamkit.state.stores import Entry

__all__ = ["CLOCKS", "Timer", "TimerStore", "Timers", "timer_store"]

CLOCKS = ("event", "wall")
STREAM_TIME = "\x00stream-time"
_SEP = "\x1f"


@dataclass(frozen=True)
class Timer:
    """A scheduled timer.

    Attributes:
        key: what it is about (a state key, an order id...).
        due: when it fires, in milliseconds since the epoch.
        clock: ``event`` (the partition's stream time) or ``wall`` (the worker's clock).
        name: tells apart several timers of one key (default "").
        data: a JSON value handed back when it fires.
        attempt: 1, or more when its function failed and it fires again.
    """

    key: str
    due: int
    clock: str = "wall"
    name: str = ""
    data: Any = None
    attempt: int = 1

    def __post_init__(self) -> None:
        if self.clock not in CLOCKS:
            raise ConfigError(f"timer clock {self.clock!r}: expected event or wall")


class TimerStore:
    """The timers of one processor in one partition's ``state``."""

    def __init__(self, store: str, state: PartitionState) -> None:
        self.store = store
        self.state = state
        self.rebuild()
        state.on_rollback.append(self.rebuild)

    def rebuild(self) -> None:
        """Index the store's timers (after a restore or a rollback)."""
        self.stream_time = -1
        self._due: dict[str, list[tuple[int, str]]] = {"event": [], "wall": []}
        for store_key, entry in self.state.items(self.store):
            if store_key == STREAM_TIME:
                self.stream_time = int(entry.state)
                continue
            timer = _timer(entry)
            heapq.heappush(self._due[timer.clock], (timer.due, store_key))

    def schedule(self, timer: Timer, offset: int) -> None:
        """Set ``timer`` (replacing one of the same key and name)."""
        doc = {
            "k": timer.key,
            "n": timer.name,
            "d": timer.due,
            "c": timer.clock,
            "x": timer.data,
            "a": timer.attempt,
        }
        store_key = _join(timer.key, timer.name)
        self.state.put(self.store, store_key, Entry(doc, offset, timer.due))
        heapq.heappush(self._due[timer.clock], (timer.due, store_key))

    def cancel(self, key: str, name: str = "") -> bool:
        """Remove the timer of ``key`` and ``name``; whether there was one."""
        store_key = _join(key, name)
        if self.state.get(self.store, store_key, 0) is None:
            return False
        self.state.put(self.store, store_key, None)
        return True

    def get(self, key: str, name: str = "") -> Timer | None:
        """The timer of ``key`` and ``name``, if one is set."""
        entry = self.state.get(self.store, _join(key, name), 0)
        return None if entry is None else _timer(entry)

    def advance(self, t: int) -> None:
        """A record at ``t`` was seen: the stream time moves on."""
        self.stream_time = max(self.stream_time, t)

    def event_due(self) -> bool:
        """Whether an event-time timer is due at the stream time."""
        heap = self._due["event"]
        return bool(heap) and heap[0][0] <= self.stream_time

    def next_wall(self) -> int | None:
        """When the next wall-clock timer is due (ms), if one is set."""
        return self._due["wall"][0][0] if self._due["wall"] else None

    def due(self, wall_ms: int) -> list[Timer]:
        """The timers due now (by stream time or ``wall_ms``), removed from the store."""
        fired = self._pop("event", self.stream_time) + self._pop("wall", wall_ms)
        if any(t.clock == "event" for t in fired):  # the stream time outlives its timers
            self.state.put(self.store, STREAM_TIME, Entry(self.stream_time, -1, self.stream_time))
        return fired

    def _pop(self, clock: str, now: int) -> list[Timer]:
        heap, fired = self._due[clock], []
        while heap and heap[0][0] <= now:
            due, store_key = heapq.heappop(heap)
            entry = self.state.get(self.store, store_key, 0)
            if entry is None or entry.state["d"] != due or entry.state["c"] != clock:
                continue  # cancelled, or set again for another time
            self.state.put(self.store, store_key, None)
            fired.append(_timer(entry))
        return fired

    def timers(self, key: str | None = None) -> list[Timer]:
        """Every timer set (of ``key``), by due time."""
        found = [
            _timer(entry)
            for store_key, entry in self.state.items(self.store)
            if store_key != STREAM_TIME and (key is None or entry.state["k"] == key)
        ]
        return sorted(found, key=lambda t: t.due)


class Timers:
    """The durable timers of a processor or aggregate (``ctx.timers``; see
    :mod:`streamkit.state.timers`).

    ``schedule`` sets one timer per key (and name); it fires once, through the
    ``on_timer`` function, after a restart too. The key defaults to the context's key:
    the record key in a processor, the state key in an aggregate, whose timers are only
    about the state key being folded (the key's state is what its timer gets).
    """

    __slots__ = ("_bound", "_event_ms", "_key", "_now_ms", "_offset", "_prior", "_store")

    def __init__(
        self,
        store: TimerStore,
        offset: int,
        now_ms: int,
        event_ms: int,
        *,
        key: Any = None,
        bound: str | None = None,
    ) -> None:
        self._store = store
        self._offset = offset
        self._now_ms = now_ms
        self._event_ms = event_ms
        self._key = key
        self._bound = bound
        self._prior: dict[tuple[str, str], Timer | None] = {}

    def schedule(
        self,
        key: Any = None,
        *,
        at: int | dt.datetime | None = None,
        after: float | str | None = None,
        clock: str = "wall",
        name: str = "",
        data: Any = None,
    ) -> Timer:
        """Set a timer for ``key`` (default: the context's key) at a time (``at``, ms or a
        datetime) or ``after`` a delay (seconds or ``"30s"``) from now (``clock="wall"``,
        the worker's clock) or from the record's event time (``clock="event"``: fires when
        the partition's stream time gets there). Replaces the key's timer of the same
        name. ``data`` (a JSON value) comes back when it fires."""
        if (at is None) == (after is None):
            raise ConfigError("schedule a timer with exactly one of at= or after=")
        if at is not None:
            due = int(at.timestamp() * 1000) if isinstance(at, dt.datetime) else int(at)
        else:
            delay = after if isinstance(after, int | float) else parse_duration(str(after))
            base = self._event_ms if clock == "event" else self._now_ms
            due = base + int(delay * 1000)
        timer = Timer(self._of(key), due, clock, name, data)
        self._remember(timer.key, name)
        self._store.schedule(timer, self._offset)
        return timer

    def cancel(self, key: Any = None, name: str = "") -> bool:
        """Remove ``key``'s timer (of ``name``); whether one was set."""
        self._remember(self._of(key), name)
        return self._store.cancel(self._of(key), name)

    def get(self, key: Any = None, name: str = "") -> Timer | None:
        """``key``'s timer (of ``name``), if one is set."""
        return self._store.get(self._of(key), name)

    @property
    def now_ms(self) -> int:
        """The worker's clock (milliseconds) when this handle was made."""
        return self._now_ms

    @property
    def stream_time(self) -> int:
        """The partition's stream time (ms; -1 before its first record): the highest event
        time it has seen, the record being handled included."""
        return self._store.stream_time

    def discard(self) -> None:
        """Undo what was set or cancelled through this handle: the function that did it
        failed, and a failed record changes no state."""
        for (key, name), prior in reversed(self._prior.items()):
            if prior is None:
                self._store.cancel(key, name)
            else:
                self._store.schedule(prior, self._offset)
        self._prior.clear()

    def _remember(self, key: str, name: str) -> None:
        if (key, name) not in self._prior:
            self._prior[key, name] = self._store.get(key, name)

    def _of(self, key: Any) -> str:
        """The timer key of ``key`` (None: the context's)."""
        key = self._key if key is None else key
        if key is None:
            raise ConfigError("this record has no key: schedule a timer for a key")
        if self._bound is not None and str(key) != self._bound:
            raise ConfigError(
                f"an aggregate's timers are about the state key being folded "
                f"({self._bound!r}), not {key!r}: leave the key out"
            )
        return str(key)


def timer_store(state: PartitionState, store: str) -> TimerStore:
    """The timers of ``store`` in ``state`` (indexed once per partition)."""
    found = state.views.get(store)
    if not isinstance(found, TimerStore):
        found = TimerStore(store, state)
        state.views[store] = found
    return found


def _timer(entry: Entry) -> Timer:
    doc = entry.state
    return Timer(doc["k"], int(doc["d"]), doc["c"], doc["n"], doc.get("x"), doc.get("a", 1))


def _join(key: str, name: str) -> str:
    return f"{key}{_SEP}{name}"
