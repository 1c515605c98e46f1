"""Time in the record path: a record into its windows (or, too late, to the late topic),
and what time does: windows that close, timers that fire.

Closing and firing happen after each record (its event time moves the stream time on)
and on the engine's clock ticks (wall-clock timers, windows idle for ``close_idle``).
Their outputs go to the same sink as a record's; the windows a close removed are put back
(``Outcome.undo``) when those outputs cannot be written, so they close again later.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from time import perf_counter
from typing import Any

import orjson

from streamkit.errors import GatherTimeoutError
from streamkit.failures.dead_letter import dead_letter_record
from streamkit.failures.failure import Failure, Stage
from streamkit.processor import Context, Emit, ProcessorSpec, route
from streamkit.records import Headers
from streamkit.runtime._stateful import StatefulSteps, Where, key_mismatch
from streamkit.runtime.outcome import Late, Outcome, OutRecord, Sink
from streamkit.runtime.serdes import TopicSerdes
from streamkit.state.aggregate import AggregateSpec, fire, source_of
from streamkit.state.partition import PartitionState
from streamkit.state.stores import Entry
from streamkit.state.timers import Timer, Timers, timer_store
from streamkit.state.window_store import WindowResult, window_store
from streamkit.state.windows import WindowSpec
from streamkit.topology import Topology

__all__ = ["LATE_HEADER", "TimeSteps", "late_record"]

WINDOW_HEADER = "__streamkit.window."
LATE_HEADER = "__streamkit.late."
Deliver = Callable[[ProcessorSpec, list[Emit], Where, bytes | None, Any, Sink, Outcome], str]


class TimeSteps:
    """Windows and timers of one app (see the module docstring)."""

    def __init__(
        self,
        topology: Topology,
        serdes: dict[str, TopicSerdes],
        clock: Callable[[], int],
        decide: Callable[[Failure, Outcome], None],
        deliver: Deliver,
        stateful: StatefulSteps,
    ) -> None:
        app = topology.app
        self.stateful = stateful
        self.topology = topology
        self.repartitioned = frozenset(app.repartitioned)
        self.serdes = serdes
        self.clock = clock
        self.decide = decide
        self.deliver = deliver
        self.windows: dict[str, list[WindowSpec]] = {}
        for spec in app.windows:
            self.windows.setdefault(spec.input, []).append(spec)
        self.timed: dict[str, list[ProcessorSpec | AggregateSpec]] = {}
        specs: list[ProcessorSpec | AggregateSpec] = [*app.processors, *app.aggregates]
        for timed in specs:
            if timed.on_timer is not None:
                self.timed.setdefault(timed.input, []).append(timed)

    def has_time(self, topic: str) -> bool:
        """Whether records of ``topic`` feed windows or timers."""
        return topic in self.windows or topic in self.timed

    # -- a record ---------------------------------------------------------------------------
    def window_all(
        self,
        event: Any,
        event_key: Any,
        where: Where,
        sink: Sink,
        outcome: Outcome,
        state: PartitionState | None,
        only: frozenset[str] | None,
        headers: Headers,
    ) -> None:
        """Fold the event into the windows of each window spec of its topic."""
        assert state is not None  # noqa: S101 - a partition with windows has state
        source = source_of(headers) if where[0] in self.repartitioned else None
        timed = self.stateful.processed
        for spec in self.windows.get(where[0], []):
            if only is not None and spec.name not in only:
                continue
            started = perf_counter() if timed is not None else 0.0
            ended = self._window(spec, event, event_key, where, source, sink, outcome, state)
            if timed is not None:
                timed(spec.name, perf_counter() - started, ended)

    def _window(
        self,
        spec: WindowSpec,
        event: Any,
        event_key: Any,
        where: Where,
        source: tuple[str, int] | None,
        sink: Sink,
        outcome: Outcome,
        state: PartitionState,
    ) -> str:
        """Fold the event into ``spec``'s windows; how it ended (emitted: folded,
        filtered, failed, deduplicated or late)."""
        topic, partition, offset, timestamp = where
        key = spec.state_key(event, event_key)
        if key is None:
            outcome.filtered += 1
            return "filtered"
        mismatch = key_mismatch(f"window {spec.name}", spec.key, event_key, key, topic)
        if mismatch is not None:
            failure = Failure(Stage.PROCESS, topic, partition, offset, mismatch, spec.name)
            self.decide(failure, outcome)
            return "failed"
        mark = (
            None
            if source is None
            else (Topology.sources_store(spec.name), f"{key}/{source[0]}", source[1])
        )
        if mark is not None and _folded(state, *mark):
            outcome.deduplicated += 1
            outcome.done.append(spec.name)
            return "deduplicated"
        try:
            t = spec.event_time(event, timestamp)
            now = self.clock()
            added = window_store(state, spec, now).add(key, t, event, offset, now)
        except Exception as exc:  # noqa: BLE001 - the fold and event time are user code
            self.decide(Failure(Stage.PROCESS, topic, partition, offset, exc, spec.name), outcome)
            return "failed"
        if mark is not None:  # folded: a second copy from the router is not
            state.put(mark[0], mark[1], Entry(True, mark[2], 0))
        outcome.time_due = outcome.time_due or added.due
        if added.late:
            outcome.late.append(Late(spec.store, added.window_end, added.watermark, t))
            return "late"
        outcome.done.append(spec.name)
        for result in added.updates:
            self._emit(spec, result, partition, sink, outcome)
        return "emitted"

    # -- time passing -----------------------------------------------------------------------
    def timers_due(self, topic: str, state: PartitionState) -> bool:
        """Whether the stream time fires a timer of the partition (that it closes a window
        the record's outcome says: ``time_due``)."""
        return any(
            timer_store(state, Topology.timer_store(p.name)).event_due()
            for p in self.timed.get(topic, [])
        )

    def next_wall(self, topic: str, state: PartitionState) -> tuple[int | None, int | None]:
        """When the partition's next wall-clock timer is due, and its next idle window."""
        now = self.clock()
        idle = [window_store(state, s, now).next_idle() for s in self.windows.get(topic, [])]
        timers = [
            timer_store(state, Topology.timer_store(p.name)).next_wall()
            for p in self.timed.get(topic, [])
        ]
        return _earliest(timers), _earliest(idle)

    def advance(self, topic: str, state: PartitionState, event_ms: int) -> None:
        """Move the partition's stream time to ``event_ms`` (a test driver's clock)."""
        for spec in self.windows.get(topic, []):
            store = window_store(state, spec, self.clock())
            store.stream_time = max(store.stream_time, event_ms)
        for processor in self.timed.get(topic, []):
            timer_store(state, Topology.timer_store(processor.name)).advance(event_ms)

    def fire(
        self,
        topic: str,
        state: PartitionState,
        sink: Sink,
        outcome: Outcome,
        *,
        idle: bool,
        wall_until: int | None = None,
    ) -> None:
        """Close the partition's due windows (idle ones too when ``idle``: it is caught up)
        and fire its due timers, into ``sink`` (wall-clock ones due at ``wall_until`` at
        the latest, when given: see :meth:`PartitionTask.wall_cleared`)."""
        now = self.clock()
        wall = now if wall_until is None else min(now, wall_until)
        for spec in self.windows.get(topic, []):
            windows = window_store(state, spec, now)
            results, priors = windows.close_due(now, idle=idle)
            if priors:
                outcome.undo.append(partial(windows.reopen, priors))
            for result in results:
                self._emit(spec, result, state.partition, sink, outcome)
        for processor in self.timed.get(topic, []):
            store = timer_store(state, Topology.timer_store(processor.name))
            for timer in store.due(wall):
                self._fire_timer(processor, timer, (topic, state.partition), state, sink, outcome)

    def _fire_timer(
        self,
        spec: ProcessorSpec | AggregateSpec,
        timer: Timer,
        tp: tuple[str, int],
        state: PartitionState,
        sink: Sink,
        outcome: Outcome,
    ) -> None:
        topic, partition = tp
        assert spec.on_timer is not None  # noqa: S101 - only such processors have timers
        store = timer_store(state, Topology.timer_store(spec.name))
        bound = timer.key if isinstance(spec, AggregateSpec) else None
        timers = Timers(
            store, -1, self.clock(), max(store.stream_time, timer.due), key=timer.key, bound=bound
        )
        ctx = Context(
            topic=topic,
            partition=partition,
            offset=-1,
            timestamp=timer.due,
            key=timer.key,
            headers=[],
            processor=spec.name,
            timers=timers,
        )
        raw_key = self.serdes[topic].key.encode(timer.key)
        fired = Outcome()
        try:
            if isinstance(spec, AggregateSpec):
                self._fire_fold(spec, timer, ctx, state, sink, fired)
                emits = []
            elif spec.timer_takes_context:
                emits = route(spec, spec.on_timer(timer, ctx))
            else:
                emits = route(spec, spec.on_timer(timer))
        except Exception as exc:  # noqa: BLE001 - user code; the handler decides
            if not isinstance(exc, GatherTimeoutError):  # (a closed group keeps its timers)
                timers.discard()
            failure = Failure(
                Stage.PROCESS, topic, partition, -1, exc, spec.name, attempt=timer.attempt
            )
            self.decide(failure, fired)
        else:
            if isinstance(spec, ProcessorSpec):
                where = (topic, partition, -1, timer.due)
                self.deliver(spec, emits, where, raw_key, timer.key, sink, fired)
        outcome.produce_errors += fired.produce_errors
        outcome.steps += fired.steps
        if fired.retry or fired.forward:  # fire again later (wall clock)
            delay = max([*fired.retry.values(), *(d for _, _, d in fired.forward)])
            again = Timer(
                timer.key,
                self.clock() + int(delay * 1000),
                "wall",
                timer.name,
                timer.data,
                timer.attempt + 1,
            )
            store.schedule(again, -1)
        for failure in fired.dead:
            doc = {
                "key": timer.key,
                "name": timer.name,
                "due": timer.due,
                "clock": timer.clock,
                "data": timer.data,
            }
            if isinstance(failure.error, GatherTimeoutError):
                doc["parts"] = failure.error.parts
            outcome.reroutes.append(self._dead(failure, raw_key, {"timer": doc}, timer.due))

    def _fire_fold(
        self,
        spec: AggregateSpec,
        timer: Timer,
        ctx: Context,
        state: PartitionState,
        sink: Sink,
        outcome: Outcome,
    ) -> None:
        """An aggregate's timer fired: the key's next state, into the store and (as its
        projection) to the aggregate's output. Raises what ``on_timer`` or the output's
        contract raises; the state stays as it was then."""
        now = self.clock()
        current = state.get(spec.store, timer.key, now)
        try:
            entry = fire(spec, current, timer, now, ctx)
        except GatherTimeoutError as exc:  # the group closes, and its parts go to the DLQ
            offset, sources = (-1, None) if current is None else (current.offset, current.sources)
            kept = None if exc.state is None else Entry(exc.state, offset, now, sources)
            state.put(spec.store, timer.key, kept)
            raise
        projections = self.stateful.projections(spec, entry, timer.key)
        state.put(spec.store, timer.key, entry)
        self.stateful.publish(spec, entry, projections, max(1, timer.due), sink, outcome)

    def _emit(
        self, spec: WindowSpec, result: WindowResult, partition: int, sink: Sink, outcome: Outcome
    ) -> None:
        """A window's result to the window's output, keyed by the window key."""
        if spec.output is None:
            return
        serdes = self.serdes[spec.output]
        try:
            value = serdes.value.encode(
                spec.value(result.key, result.start, result.end, result.state)
            )
            key = serdes.key.encode(result.key)
        except Exception as exc:  # noqa: BLE001 - a contract, or the user's result function
            failure = Failure(Stage.ENCODE, spec.input, partition, -1, exc, spec.name, spec.output)
            doc = {
                "key": result.key,
                "start": result.start,
                "end": result.end,
                "value": result.state,
            }
            outcome.reroutes.append(self._dead(failure, result.key.encode(), doc, result.end))
            return
        headers: Headers = [
            (WINDOW_HEADER + "start", str(result.start).encode()),
            (WINDOW_HEADER + "end", str(result.end).encode()),
            (WINDOW_HEADER + "final", b"true" if result.final else b"false"),
        ]
        error = sink(spec.output, key, value, headers, max(1, result.end))
        if error is not None:
            outcome.produce_errors.append(error)

    def _dead(self, failure: Failure, key: bytes | None, doc: Any, when: int) -> OutRecord:
        """The dead letter of something time produced (a timer, a window's result): no
        input record, so its value is the thing itself, as JSON."""
        value = orjson.dumps(doc, default=str)
        topology = self.topology
        return dead_letter_record(
            failure,
            topology.dlq(failure.topic),
            key,
            value,
            None,
            app=topology.name,
            group=topology.group_id,
            source_timestamp=when,
            now_ms=self.clock(),
        )


def late_record(
    late: Late,
    topic: str,
    where: tuple[str, int, int],
    key: bytes | None,
    value: bytes | None,
    headers: Headers,
) -> OutRecord:
    """The record that carries a late input to ``topic`` (the store's late topic): its key,
    value and headers as they were, and ``__streamkit.late.*`` headers saying why."""
    source, partition, offset = where
    why = {
        "store": late.store,
        "window.end": str(late.window_end),
        "watermark": str(late.watermark),
        "event.time": str(late.event_time),
        "topic": source,
        "partition": str(partition),
        "offset": str(offset),
    }
    extra = [(LATE_HEADER + name, text.encode()) for name, text in why.items()]
    return topic, key, value, [*headers, *extra]


def _folded(state: PartitionState, store: str, mark: str, offset: int) -> bool:
    """Whether a repartitioned record was folded before (its router wrote it twice): the
    sources store remembers, per key and source partition, the last offset folded."""
    folded = state.get(store, mark, 0)
    return folded is not None and folded.offset >= offset


def _earliest(times: list[int | None]) -> int | None:
    found = [t for t in times if t is not None]
    return min(found) if found else None
