"""The windows of one partition: their store, an index of the open ones, and when each
closes (by stream time, or by wall-clock idleness).

Every window is an entry of the partition's window store (so it is in the changelog and
restored with the partition); the index and the close queues are rebuilt from the store
after a restore or a rolled-back transaction. A window entry remembers the last input
offset folded into it, so a redelivered record is not folded twice.

Idleness is wall-clock time without a record for a window *while its partition is
caught up*: the engine closes idle windows only when no record of the partition waits
(a lagging consumer's windows are not idle), and a partition newly assigned starts its
windows' idle time over (a restart is no idleness either).
"""

from __future__ import annotations

import heapq
from bisect import insort
from dataclasses import dataclass, field
from typing import Any

from streamkit.errors import WindowStateTooLargeError
from streamkit.state.partition import PartitionState
from streamkit.state.stores import Entry, encode_entry
from streamkit.state.windows import WindowSpec

__all__ = [
    "Added",
    "WindowResult",
    "WindowStateTooLargeError",
    "WindowStore",
    "describe",
    "window_keys",
    "window_store",
]

STREAM_TIME = "\x00stream-time"
_SEP = "\x1f"


@dataclass(frozen=True)
class WindowResult:
    """A window's state at an update or at its close."""

    key: str
    start: int
    end: int
    state: Any
    final: bool


@dataclass
class Added:
    """What one record did to its windows: ``late`` (every window of it was closed, with
    the last such window's end and the watermark then), the results to emit now, and
    whether the stream time now closes a window (``due``)."""

    late: bool = False
    window_end: int = 0
    watermark: int = 0
    updates: list[WindowResult] = field(default_factory=list)
    due: bool = False


class WindowStore:
    """The windows of ``spec`` in one partition's ``state``."""

    def __init__(self, spec: WindowSpec, state: PartitionState, opened_ms: int = 0) -> None:
        self.spec = spec
        self.state = state
        self.store = spec.store
        self.opened_ms = opened_ms
        self._idle_enabled = spec.close_idle_ms is not None
        """When this partition's windows were opened here: their idle time starts then."""
        self._priors: list[tuple[str, Entry]] = []
        self.rebuild()
        state.on_rollback.append(self.rebuild)

    # -- the index --------------------------------------------------------------------------
    def rebuild(self) -> None:
        """Index the store's windows (after a restore or a rollback)."""
        self.stream_time = -1
        self.open: dict[str, dict[int, int]] = {}
        self._closing: list[tuple[int, str, int]] = []
        self._idle: list[tuple[int, str, int]] = []
        self._idle_queued: set[tuple[str, int]] = set()
        """Windows with an entry in the idle queue (one each: a later record does not add
        another; a stale entry is put back with the window's new deadline when popped)."""
        for store_key, entry in self.state.items(self.store):
            if store_key == STREAM_TIME:
                self.stream_time = max(self.stream_time, int(entry.state))
                continue
            self.stream_time = max(self.stream_time, entry.timestamp)
            self._index(store_key, entry.state)

    def _index(self, store_key: str, doc: dict[str, Any]) -> None:
        spec = self.spec
        if spec.kind == "sliding":
            for end in doc["p"]:
                heapq.heappush(self._closing, (spec.closes_at(end), store_key, end))
            if self._idle_enabled:
                self._watch_idle(store_key, doc, 0)
            return
        key, start = _split(store_key)
        self.open.setdefault(key, {})[start] = doc["e"]
        heapq.heappush(self._closing, (spec.closes_at(doc["e"]), key, start))
        if not doc.get("x") and self._idle_enabled:
            self._watch_idle(key, doc, start)

    def _watch_idle(self, key: str, doc: dict[str, Any], start: int) -> None:
        if (key, start) not in self._idle_queued:
            self._idle_queued.add((key, start))
            heapq.heappush(self._idle, (self._idle_at(doc), key, start))

    def _idle_at(self, doc: dict[str, Any]) -> int:
        return int(max(doc["w"], self.opened_ms)) + (self.spec.close_idle_ms or 0)

    @property
    def watermark(self) -> int:
        """Stream time minus the grace: records before it are late (-1: no record yet)."""
        return -1 if self.stream_time < 0 else self.stream_time - self.spec.grace_ms

    # -- records ----------------------------------------------------------------------------
    def add(self, key: str, t: int, event: Any, offset: int, wall_ms: int) -> Added:
        """Fold a record at event time ``t`` into its windows; advance the stream time."""
        kind = self.spec.kind
        if kind == "session":
            added = self._add_session(key, t, event, offset, wall_ms)
        elif kind == "sliding":
            added = self._add_sliding(key, t, event, offset, wall_ms)
        else:
            added = self._add_fixed(key, t, event, offset, wall_ms)
        if t > self.stream_time:
            self.stream_time = t
            closing = self._closing
            added.due = bool(closing) and closing[0][0] <= t
        return added

    def _add_fixed(self, key: str, t: int, event: Any, offset: int, wall_ms: int) -> Added:
        spec, added = self.spec, Added()
        writes: list[tuple[str, Entry, bytes | None, int, int, bool]] = []
        for start, end in spec.spans(t):
            store_key = _join(key, start)
            entry = self.state.get(self.store, store_key, 0)
            if entry is not None and entry.offset >= offset:  # folded before: a redelivery
                if not entry.state.get("x"):
                    writes.append((store_key, entry, None, start, end, False))
                continue
            if self.stream_time >= spec.closes_at(end) or (entry and entry.state.get("x")):
                added.window_end, added.watermark = end, self.watermark
                added.late = True
                continue
            state = spec.add(None if entry is None else entry.state["v"], event, entry is None)
            doc = {"s": start, "e": end, "v": state, "w": wall_ms}
            checked, encoded = self._checked(key, start, end, doc, offset, t)
            writes.append((store_key, checked, encoded, start, end, entry is None))
        added.late = added.late and not writes and not self.state.handled_before(self.store, offset)
        for store_key, entry, raw, start, end, new in writes:
            self.state.put(self.store, store_key, entry, raw)
            if new:
                self.open.setdefault(key, {})[start] = end
                heapq.heappush(self._closing, (spec.closes_at(end), key, start))
            if self._idle_enabled:
                self._watch_idle(key, entry.state, start)
            if spec.emit == "update":
                added.updates.append(WindowResult(key, start, end, entry.state["v"], False))
        return added

    def _add_session(self, key: str, t: int, event: Any, offset: int, wall_ms: int) -> Added:
        spec, gap = self.spec, self.spec.gap_ms
        sessions = self.open.get(key, {})
        joined = sorted((s, e) for s, e in sessions.items() if s - gap <= t <= e + gap)
        if not joined and self.stream_time >= spec.closes_at(t):
            # Late: it joins no open session, and the session it would start is closed.
            return self._late(offset, t)
        entries = [self.state.get(self.store, _join(key, s), 0) for s, _ in joined]
        present = [e for e in entries if e is not None]
        if any(e.offset >= offset for e in present):  # folded before: a redelivery
            doc = max(present, key=lambda e: e.offset).state
            if spec.emit != "update" or doc.get("x"):
                return Added()
            return Added(updates=[WindowResult(key, doc["s"], doc["e"], doc["v"], False)])
        if any(e.state.get("x") for e in present):
            return self._late(offset, max(e.state["e"] for e in present))
        state: Any = None
        for entry in present:
            state = entry.state["v"] if state is None else spec.combine(state, entry.state["v"])
        state = spec.add(state, event, state is None)
        start = min([t, *(s for s, _ in joined)])
        end = max([t, *(e for _, e in joined)])
        doc = {"s": start, "e": end, "v": state, "w": wall_ms}
        checked, raw = self._checked(key, start, end, doc, offset, max(t, end))
        for old_start, _ in joined:
            if old_start != start:
                self.state.put(self.store, _join(key, old_start), None)
            sessions.pop(old_start, None)
        self.state.put(self.store, _join(key, start), checked, raw)
        self.open.setdefault(key, {})[start] = end
        heapq.heappush(self._closing, (spec.closes_at(end), key, start))
        if self._idle_enabled:
            self._watch_idle(key, doc, start)
        updates = [WindowResult(key, start, end, state, False)] if spec.emit == "update" else []
        return Added(updates=updates)

    def _add_sliding(self, key: str, t: int, event: Any, offset: int, wall_ms: int) -> Added:
        spec = self.spec
        entry = self.state.get(self.store, key, 0)
        if entry is not None and entry.offset >= offset:  # folded before: a redelivery
            return Added()
        if self.stream_time >= spec.closes_at(t):
            return self._late(offset, t)
        doc: dict[str, Any] = {"b": [], "p": [], "w": wall_ms}
        if entry is not None:
            doc = dict(entry.state)
        item = event if spec.form != "collect" or spec.fn is None else spec.fn(event)
        buffer = [list(x) for x in doc["b"]]
        insort(buffer, [t, item], key=lambda x: x[0])
        pending = sorted({*doc["p"], t})
        doc.update(b=buffer, p=pending, w=wall_ms)
        checked, raw = self._checked(key, t - spec.size_ms, t, doc, offset, t)
        self.state.put(self.store, key, checked, raw)
        heapq.heappush(self._closing, (spec.closes_at(t), key, t))
        if self._idle_enabled:
            self._watch_idle(key, doc, 0)
        added = Added()
        if spec.emit == "update":
            for end in pending:
                if end - spec.size_ms <= t <= end:
                    added.updates.append(self._sliding_result(key, buffer, end, False))
        return added

    def _late(self, offset: int, window_end: int) -> Added:
        """A record whose windows are closed: late, unless it is a redelivery of one
        handled before (nothing to do again)."""
        if self.state.handled_before(self.store, offset):
            return Added()
        return Added(True, window_end, self.watermark)

    def _sliding_result(self, key: str, buffer: list[Any], end: int, final: bool) -> WindowResult:
        state = _sliding_state(self.spec, buffer, end)
        return WindowResult(key, end - self.spec.size_ms, end, state, final)

    def _checked(
        self, key: str, start: int, end: int, doc: dict[str, Any], offset: int, t: int
    ) -> tuple[Entry, bytes]:
        """The window's new entry and its changelog bytes, once they fit ``max_bytes``."""
        entry = Entry(doc, offset, t)
        try:
            raw = encode_entry(entry)
        except TypeError as exc:
            raise WindowStateTooLargeError(
                f"window {self.spec.name} of key {key!r} [{start}, {end}): its state is not "
                f"a JSON value: {exc}"
            ) from exc
        if len(raw) > self.spec.max_bytes:
            raise WindowStateTooLargeError(
                f"window {self.spec.name} of key {key!r} [{start}, {end}) would hold "
                f"{len(raw):,} bytes of state, over max_bytes={self.spec.max_bytes:,} (a record "
                "Kafka accepts); the record was not folded"
            )
        return entry, raw

    # -- closing ----------------------------------------------------------------------------
    def next_close(self) -> int | None:
        """The stream time at which the next window closes, if one is open."""
        return self._closing[0][0] if self._closing else None

    def next_idle(self) -> int | None:
        """When the next window may close by idleness (wall clock, ms), if one can."""
        return self._idle[0][0] if self._idle else None

    def close_due(
        self, wall_ms: int, *, idle: bool = True
    ) -> tuple[list[WindowResult], list[tuple[str, Entry]]]:
        """Close the windows the stream time closes, and (``idle``: the partition is caught
        up) those idle at ``wall_ms``: their final results (with ``emit="final"``; none
        with ``emit="update"``), and the entries as they were before (for :meth:`reopen`,
        when the results could not be written)."""
        self._priors = []
        results: list[WindowResult] = []
        deleted = False
        while self._closing and self._closing[0][0] <= self.stream_time:
            close_at, key, start = heapq.heappop(self._closing)
            if self.spec.kind == "sliding":
                results += self._close_sliding(key, [start])
                continue
            entry = self.state.get(self.store, _join(key, start), 0)
            if entry is None or self.spec.closes_at(entry.state["e"]) != close_at:
                continue  # merged into another session, or closed already
            if not entry.state.get("x"):
                results.append(self._final(key, entry))
            self._priors.append((_join(key, start), entry))
            self.state.put(self.store, _join(key, start), None)
            self.open.get(key, {}).pop(start, None)
            deleted = True
        while idle and self._idle and self._idle[0][0] <= wall_ms:
            deadline, key, start = heapq.heappop(self._idle)
            results += self._close_idle(key, start, deadline)
        if deleted:  # the stream time outlives the windows it closed
            self.state.put(self.store, STREAM_TIME, Entry(self.stream_time, -1, self.stream_time))
        return [r for r in results if self.spec.emit == "final"], self._priors

    def _close_idle(self, key: str, start: int, deadline: int) -> list[WindowResult]:
        self._idle_queued.discard((key, start))
        store_key = key if self.spec.kind == "sliding" else _join(key, start)
        entry = self.state.get(self.store, store_key, 0)
        if entry is None or entry.state.get("x"):
            return []  # gone, or closed already
        if self._idle_at(entry.state) != deadline:  # a record came since: wait again
            if self._idle_enabled:
                self._watch_idle(key, entry.state, start)
            return []
        if self.spec.kind == "sliding":
            return self._close_sliding(key, list(entry.state["p"]))
        closed = {**entry.state, "x": 1}
        self._priors.append((store_key, entry))
        self.state.put(self.store, store_key, Entry(closed, entry.offset, entry.timestamp))
        return [self._final(key, entry)]

    def _close_sliding(self, key: str, ends: list[int]) -> list[WindowResult]:
        entry = self.state.get(self.store, key, 0)
        if entry is None:
            return []
        doc = dict(entry.state)
        due = [end for end in ends if end in doc["p"]]
        results = [self._sliding_result(key, doc["b"], end, True) for end in due]
        if due:
            self._priors.append((key, entry))
        pending = [end for end in doc["p"] if end not in due]
        # Pending windows need the records within size of them; windows of records yet to
        # come (at the watermark or later) need those within size of the watermark.
        oldest = min([*pending, self.watermark]) - self.spec.size_ms
        buffer = [x for x in doc["b"] if x[0] >= oldest]
        if not buffer and not pending:
            self.state.put(self.store, key, None)
        elif due:
            doc.update(b=buffer, p=pending)
            self.state.put(self.store, key, Entry(doc, entry.offset, entry.timestamp))
        return results

    def _final(self, key: str, entry: Entry) -> WindowResult:
        doc = entry.state
        return WindowResult(key, doc["s"], doc["e"], doc["v"], True)

    def reopen(self, priors: list[tuple[str, Entry]]) -> None:
        """Put closed windows back as they were (their results were not written); they
        close again, and their results are emitted again, when next due."""
        for store_key, entry in priors:
            self.state.put(self.store, store_key, entry)
        self.rebuild()

    # -- reading ----------------------------------------------------------------------------
    def windows(self, key: str, since: int = 0, until: int | None = None) -> list[dict[str, Any]]:
        """A key's windows held now (open, or closed by idleness and kept until the stream
        time passes them) overlapping ``[since, until)``: start, end, value, closed."""
        if self.spec.kind == "sliding":
            store_keys = [key]
        else:
            store_keys = [_join(key, start) for start in sorted(self.open.get(key, {}))]
        found = []
        for store_key in store_keys:
            entry = self.state.get(self.store, store_key, 0)
            if entry is not None:
                found += describe(self.spec, entry.state)
        return [w for w in found if w["end"] > since and (until is None or w["start"] < until)]


def describe(spec: WindowSpec, doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The windows one entry of a window store holds (a sliding window's entry holds one
    per record not yet closed): start, end, value, closed."""
    if spec.kind != "sliding":
        closed = bool(doc.get("x"))
        return [{"start": doc["s"], "end": doc["e"], "value": doc["v"], "closed": closed}]
    return [
        {
            "start": end - spec.size_ms,
            "end": end,
            "value": _sliding_state(spec, doc["b"], end),
            "closed": False,
        }
        for end in doc["p"]
    ]


def _sliding_state(spec: WindowSpec, buffer: list[Any], end: int) -> Any:
    """The state of the sliding window ending at ``end``, from a key's buffered records."""
    items = [item for ts, item in buffer if end - spec.size_ms <= ts <= end]
    return items if spec.form == "collect" else spec.over(items)


def window_keys(key: str) -> tuple[str, str]:
    """The store key of a key's sliding window, and the prefix of its other windows."""
    return key, f"{key}{_SEP}"


def _join(key: str, start: int) -> str:
    return f"{key}{_SEP}{start}"


def _split(store_key: str) -> tuple[str, int]:
    key, _, start = store_key.rpartition(_SEP)
    return key, int(start)


def window_store(state: PartitionState, spec: WindowSpec, now_ms: int = 0) -> WindowStore:
    """The windows of ``spec`` in ``state``, indexed once per partition (``now_ms``: when
    the first use opens them, the start of their idle time)."""
    found = state.views.get(spec.store)
    if not isinstance(found, WindowStore):
        found = WindowStore(spec, state, now_ms)
        state.views[spec.store] = found
    return found
