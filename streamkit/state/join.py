"""Windowed stream-stream joins.

``@app.join(left=ORDERS, right=PAYMENTS, on="order_id", within="5m")`` pairs each record
of one topic with the records of the other that share its join key and whose event times
are at most ``within`` apart. Both topics are first repartitioned by the join key into one
internal topic, so matching records meet in one partition whatever keys they came with;
there, per key, each side's records wait in a store (with a compacted changelog) until
the stream time passes their event time plus ``within`` plus ``grace``, when a durable
event-time timer evicts them.

Time decides, not traffic: the stream time is the highest event time the repartition
partition has seen. A waiting record is a partner until the stream time passes its event
time + ``within`` + ``grace`` (whether or not its eviction timer has fired yet). A record
arriving when the stream time has passed its own event time + ``within`` + ``grace`` is
late: every partner it could have had is gone, so it is not folded (no pair, and no
``fn(record, None)``) but goes to the late topic ``<app>-<store>-late``, counted in
``streamkit_late_records_total``. ``grace`` is how far behind the stream time a record
may come (a stalled router, a crashed worker's partition) and still meet its partners.

``how="inner"`` gives ``fn(left, right)`` for every matching pair, as soon as the second
of the two arrives. ``"left"`` also gives ``fn(left, None)`` for a left record that found
no match, when it is evicted; ``"outer"`` does that for both sides (``fn(None, right)``).
Buffered records must be JSON values.

A key's memory of what it folded (the input offset and the router sources of its records)
outlives the eviction of its last record by another ``within`` + ``grace`` of stream time,
so a redelivered or re-routed copy of an evicted record is recognised and dropped, never
folded twice (which would pair nothing and give ``fn(left, None)`` after ``fn(left,
right)``); a copy that comes later still is late by the rule above.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streamkit.errors import ConfigError
from streamkit.state.aggregate import TooLate
from streamkit.state.stores import state_key

__all__ = ["JoinSpec"]

_EVICT = "join.evict"
_FORGET = "join.forget"
_SIDES = ("l", "r")


@dataclass(frozen=True)
class JoinSpec:
    """A declared join (see the module docstring).

    Attributes:
        name: the join's name (its function's).
        fn: ``(left, right) -> result`` (either may be None in left and outer joins).
        left: the left topic.
        right: the right topic.
        on: the field holding the join key on both sides, or a function of a record.
        within_ms: how far apart in event time two records may be and still join.
        how: ``inner``, ``left`` or ``outer``.
        grace_ms: how far behind the stream time a record may come and still be joined.
    """

    name: str
    fn: Callable[[Any, Any], Any]
    left: str
    right: str
    on: str | Callable[[Any], Any]
    within_ms: int
    how: str = "inner"
    grace_ms: int = 0

    def __post_init__(self) -> None:
        if self.how not in {"inner", "left", "outer"}:
            raise ConfigError(f"join {self.name}: how={self.how!r} is not inner, left or outer")
        if self.within_ms <= 0:
            raise ConfigError(f"join {self.name}: within must be positive")
        if self.grace_ms < 0:
            raise ConfigError(f"join {self.name}: grace must be >= 0")
        if self.left == self.right:
            raise ConfigError(f"join {self.name}: left and right are the same topic")

    @property
    def inputs(self) -> tuple[str, str]:
        """The two topics joined."""
        return (self.left, self.right)

    def correlation(self, event: Any) -> str | None:
        """The join key of a record (None: it has none and joins nothing)."""
        return state_key(self.on, event, None)

    def envelope(self, topic: str, event: Any) -> dict[str, Any]:
        """A record as it travels through the repartition topic: with its side."""
        return {"side": "l" if topic == self.left else "r", "event": event}

    # -- the aggregate over the repartition topic -----------------------------------------
    @property
    def horizon_ms(self) -> int:
        """How long after its event time (in stream time) a record waits for partners."""
        return self.within_ms + self.grace_ms

    def fold(self, state: dict[str, Any] | None, envelope: dict[str, Any], ctx: Any) -> Any:
        """A record arrives: pair it with the other side's waiting records, and wait.
        Raises :class:`TooLate` when the stream time has passed its window and grace."""
        side, event, t = envelope["side"], envelope["event"], int(ctx.timestamp)
        now = ctx.timers.stream_time
        if t + self.horizon_ms < now:
            raise TooLate(t + self.within_ms, now - self.grace_ms)
        state = {s: [list(w) for w in (state or {}).get(s, [])] for s in _SIDES}
        other = "r" if side == "l" else "l"
        out, matched = [], False
        for waiting in state[other]:
            if abs(waiting[0] - t) <= self.within_ms and waiting[0] + self.horizon_ms >= now:
                out.append(self._pair(side, event, waiting[1]))
                waiting[2] = matched = True
        state[side].append([t, event, matched])
        self._schedule(state, ctx.timers)
        return {**state, "out": out}

    def on_timer(self, state: dict[str, Any] | None, timer: Any, ctx: Any) -> Any:
        """Evict the records whose window and grace the stream time has passed (giving the
        unmatched ones of an outer side their ``fn(record, None)``); a key left with none
        keeps its memory for another ``within`` + ``grace``, then is forgotten."""
        if state is None:
            return None
        now = max(int(timer.due), ctx.timers.stream_time)
        out: list[Any] = []
        kept: dict[str, list[Any]] = {}
        for side in _SIDES:
            kept[side] = []
            for waiting in state.get(side, []):
                if waiting[0] + self.horizon_ms >= now:
                    kept[side].append(waiting)
                elif not waiting[2] and self._outer(side):
                    out.append(self._pair(side, waiting[1], None))
        if kept["l"] or kept["r"]:
            self._schedule(kept, ctx.timers)
        elif timer.name == _FORGET:
            return None
        elif timer.name == _EVICT:
            ctx.timers.schedule(at=now + self.horizon_ms, clock="event", name=_FORGET)
        return {**kept, "out": out}

    @staticmethod
    def project(state: Any) -> list[Any]:
        """What a new state sends to the output: the pairs its change made."""
        return list(state.get("out") or []) if isinstance(state, dict) else []

    def _pair(self, side: str, event: Any, other: Any) -> Any:
        return self.fn(event, other) if side == "l" else self.fn(other, event)

    def _outer(self, side: str) -> bool:
        return self.how == "outer" or (self.how == "left" and side == "l")

    def _schedule(self, state: dict[str, list[Any]], timers: Any) -> None:
        earliest = min(w[0] for side in _SIDES for w in state[side])
        timers.schedule(at=earliest + self.horizon_ms + 1, clock="event", name=_EVICT)
