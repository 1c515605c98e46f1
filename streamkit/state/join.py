"""Windowed stream-stream joins.

``@app.join(left=ORDERS, right=PAYMENTS, on="order_id", within="5m")`` pairs each record
of one topic with the records of the other that share its join key and whose event times
are at most ``within`` apart. Both topics are first repartitioned by the join key into one
internal topic, so matching records meet in one partition whatever keys they came with;
there, per key, each side's records wait in a store (with a compacted changelog) until
the stream time passes their event time plus ``within``, when a durable event-time timer
evicts them.

``how="inner"`` gives ``fn(left, right)`` for every matching pair, as soon as the second
of the two arrives. ``"left"`` also gives ``fn(left, None)`` for a left record that found
no match, when it is evicted (so it waits for the stream time to pass its window);
``"outer"`` does that for both sides (``fn(None, right)``). Buffered records must be JSON
values. A record whose partners were already evicted (it arrives later than ``within``
after them, in stream time) finds none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streamkit.errors import ConfigError
from streamkit.state.stores import state_key

__all__ = ["JoinSpec"]

_EVICT = "join.evict"
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
    """

    name: str
    fn: Callable[[Any, Any], Any]
    left: str
    right: str
    on: str | Callable[[Any], Any]
    within_ms: int
    how: str = "inner"

    def __post_init__(self) -> None:
        if self.how not in {"inner", "left", "outer"}:
            raise ConfigError(f"join {self.name}: how={self.how!r} is not inner, left or outer")
        if self.within_ms <= 0:
            raise ConfigError(f"join {self.name}: within must be positive")
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
    def fold(self, state: dict[str, Any] | None, envelope: dict[str, Any], ctx: Any) -> Any:
        """A record arrives: pair it with the other side's waiting records, and wait."""
        side, event, t = envelope["side"], envelope["event"], int(ctx.timestamp)
        state = {s: list((state or {}).get(s, [])) for s in _SIDES}
        other = "r" if side == "l" else "l"
        out, matched = [], False
        for waiting in state[other]:
            if abs(waiting[0] - t) <= self.within_ms:
                out.append(self._pair(side, event, waiting[1]))
                waiting[2] = matched = True
        state[side].append([t, event, matched])
        self._schedule(state, ctx.timers)
        return {**state, "out": out}

    def on_timer(self, state: dict[str, Any] | None, timer: Any, ctx: Any) -> Any:
        """Evict the records whose window the stream time has passed (giving the unmatched
        ones of an outer side their ``fn(record, None)``)."""
        if state is None or timer.name != _EVICT:
            return state
        now = int(timer.due)
        out: list[Any] = []
        kept: dict[str, list[Any]] = {}
        for side in _SIDES:
            kept[side] = []
            for waiting in state.get(side, []):
                if waiting[0] + self.within_ms > now:
                    kept[side].append(waiting)
                elif not waiting[2] and self._outer(side):
                    out.append(self._pair(side, waiting[1], None))
        if not kept["l"] and not kept["r"]:
            if not out:
                return None
            ctx.timers.schedule(at=now, clock="event", name=_EVICT)  # then forget the key
            return {"out": out}
        self._schedule(kept, ctx.timers)
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
        timers.schedule(at=earliest + self.within_ms, clock="event", name=_EVICT)
