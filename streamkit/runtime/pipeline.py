"""The record path shared by every engine: decode, run processors and folds, encode, sink.

A :class:`Pipeline` is compiled once from an :class:`~streamkit.app.App`: a serde per topic
(schemas parsed once), processors and aggregates grouped by input topic. A task feeds it
one consumed record, the sink for that record's outputs and the partition's state; every
failure goes to the failure handler, whose decisions come back in an
:class:`~streamkit.runtime.outcome.Outcome` for the task to settle.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from time import perf_counter
from typing import Any

from streamkit.app import App
from streamkit.contracts.changes import Change
from streamkit.errors import ProcessingFailedError, SerializationError
from streamkit.failures.dead_letter import dead_letter_record, redrive_count, redrive_target
from streamkit.failures.failure import Action, Failure, FailureHandler, Stage
from streamkit.failures.retry import retry_record
from streamkit.processor import (
    Context,
    Middleware,
    ProcessorSpec,
    RecordInfo,
    route,
)
from streamkit.records import Headers, Message
from streamkit.runtime._emit import Emitter
from streamkit.runtime._fast import FastCounts, FastPath, compile_fast_path
from streamkit.runtime._filters import Filters
from streamkit.runtime._scheduler import run_inline
from streamkit.runtime._stateful import StatefulSteps, Where
from streamkit.runtime._time import Deliver, TimeSteps
from streamkit.runtime.middleware import MiddlewareChain
from streamkit.runtime.outcome import Outcome, OutRecord, Sink
from streamkit.runtime.policy import default_failure_policy
from streamkit.runtime.queues import check_queues
from streamkit.runtime.serdes import TopicSerdes, app_serdes
from streamkit.settings import Settings
from streamkit.state.aggregate import AggregateSpec
from streamkit.state.partition import PartitionState
from streamkit.state.tables import MISSING, TableData
from streamkit.state.timers import Timers
from streamkit.topology import Topology

__all__ = ["Call", "Pipeline", "wall_clock_ms"]


def wall_clock_ms() -> int:
    """Milliseconds since the epoch: the clock of engines that run on real time."""
    return int(time.time() * 1000)


@dataclass(slots=True)
class Call:
    """One processor's call on one admitted record (see :meth:`Pipeline.admit`): its
    arguments, and what writing its outputs needs."""

    spec: ProcessorSpec
    args: tuple[Any, ...]
    where: Where
    key: bytes | None
    event_key: Any
    event_id: str | None
    timers: Timers | None


class Pipeline:
    """Processors and aggregates of one app, compiled for fast per-record execution.

    ``clock`` is the engine's wall clock in milliseconds (dedupe windows, TTLs, retry due
    times); the in-memory engine gives a virtual one. With ``inline_retry_topics`` a
    processor's retry topics become blocking retries with the same delays (shadow replay
    reads no retry topic).
    """

    def __init__(
        self,
        app: App,
        settings: Settings | None = None,
        failure_handler: FailureHandler | None = None,
        middleware: Sequence[Middleware] = (),
        *,
        clock: Callable[[], int] = wall_clock_ms,
        inline_retry_topics: bool = False,
    ) -> None:
        app.validate()
        check_queues(app)
        self.app = app
        self.topology = Topology(app)
        self.settings = settings or Settings.from_env()
        self.failure_handler: FailureHandler = failure_handler or default_failure_policy(app)
        self.chain = MiddlewareChain([*app.middleware, *middleware])
        self.clock = clock
        self.serdes: dict[str, TopicSerdes] = app_serdes(app, self.settings)
        self.by_input: dict[str, list[ProcessorSpec]] = {}
        for spec in app.processors:
            self.by_input.setdefault(spec.input, []).append(spec)
        self.aggregates_by_input: dict[str, list[AggregateSpec]] = {}
        for agg in app.aggregates:
            self.aggregates_by_input.setdefault(agg.input, []).append(agg)
        self.specs = {spec.name: spec for spec in app.processors}
        self.filters = Filters(app)
        self.key_formats = {name: topic.key for name, topic in app.topics.items()}
        self.deliver: Deliver = Emitter(self.key_formats, self.serdes, self.decide).deliver
        """Encode and sink one processor's emits; say how it ended (emitted, filtered or
        failed): see :meth:`streamkit.runtime._emit.Emitter.deliver`."""
        self.fast_counts = FastCounts()
        timing = self.chain.processed if self.chain.wants_timing else None
        self.stateful = StatefulSteps(self.topology, self.serdes, clock, self.decide, timing)
        self.time = TimeSteps(
            self.topology, self.serdes, clock, self.decide, self.deliver, self.stateful
        )
        self.retry_topics = {} if inline_retry_topics else self.topology.retry_topics()
        self._inline_retries = inline_retry_topics
        self.tables = {t.name: TableData(t) for t in app.tables}
        """What this worker holds of each table, by name (the engine keeps them filled)."""
        self.tables_of: dict[str, list[TableData]] = {}
        """The tables of each table topic."""
        for data in self.tables.values():
            self.tables_of.setdefault(data.spec.topic, []).append(data)
        self.feeders: dict[str, frozenset[str]] = {
            target: frozenset(s.input for s in app.processors if target in s.outputs)
            for target in app.repartitioned
        }
        """The topics whose routers write each repartition topic: a wall-clock timer of a
        repartition topic's partition waits until those are read too."""

    # -- construction -------------------------------------------------------------------
    def open_state(
        self, topic: str, partition: int, directory: Path, *, memory: bool = False
    ) -> PartitionState | None:
        """The stores of partition ``partition`` of ``topic`` (None: it has none);
        ``memory`` opens every store in memory whatever its declared kind."""
        specs = self.topology.stores_of(topic)
        if not specs:
            return None
        if memory:
            specs = [replace(s, kind="memory") for s in specs]
        return PartitionState(partition, specs, directory)

    def fast_path(self, topic: str) -> FastPath | None:
        """A tight per-record function for the common shape of ``topic``'s processing, or
        None for the general path (see :mod:`streamkit.runtime._fast`)."""
        specs = self.by_input.get(topic, [])
        if (
            len(specs) != 1
            or specs[0].tables
            or topic in self.aggregates_by_input
            or self.chain.middlewares
            or self.serdes[topic].changes  # a change carries its key; tombstones are changes
        ):
            return None
        if self.time.has_time(topic):
            return None
        return compile_fast_path(
            specs[0],
            topic,
            topics=self.app.topics,
            serdes=self.serdes,
            decide=self.decide,
            deliver=self.deliver,
            counts=self.fast_counts,
        )

    @property
    def fast_filtered(self) -> int:
        """Records the fast path's processor returned nothing for, so far."""
        return self.fast_counts.filtered

    # -- the record path ----------------------------------------------------------------
    def process(
        self,
        msg: Message,
        sink: Sink,
        *,
        headers: Headers,
        state: PartitionState | None = None,
        attempt: int = 1,
        only: frozenset[str] | None = None,
    ) -> Outcome:
        """Run the processors and folds of ``msg``'s topic (or just ``only``) on it.

        A tombstone (value None) is passed to no processor, but on a change topic (as a
        :class:`~streamkit.contracts.changes.Change` whose op is ``tombstone``). Every
        failure goes to the failure handler; its decisions are collected in the
        :class:`Outcome` for the task to settle (a STOP decision raises
        :class:`~streamkit.errors.ProcessingFailedError`). A redriven record carrying
        ``__streamkit.redrive.processor`` runs only that processor.
        """
        if not self.chain.wants_records:
            return self._process(msg, sink, headers, state, attempt, only, None)
        info = RecordInfo(
            msg.topic() or "",
            msg.partition() or 0,
            msg.offset() or 0,
            msg.key(),
            headers,
            self.app.group_id,
        )
        with self.chain.record(info) as extra:
            return self._process(msg, sink, headers, state, attempt, only, extra or None)

    def _process(
        self,
        msg: Message,
        sink: Sink,
        headers: Headers,
        state: PartitionState | None,
        attempt: int,
        only: frozenset[str] | None,
        extra: list[tuple[str, bytes]] | None,
    ) -> Outcome:
        outcome = Outcome(extra_headers=extra or [])
        topic = msg.topic() or ""
        specs = self.by_input.get(topic, [])
        folds = self.aggregates_by_input.get(topic, [])
        windows = topic in self.time.windows
        if not specs and not folds and not windows:
            return outcome
        only = self.selected(topic, headers, only, outcome)
        if only is not None and not only and not folds and not windows:
            return outcome
        decoded = self.decoded(msg, outcome)
        if decoded is None:
            return outcome
        event, event_key = decoded
        where = (topic, msg.partition() or 0, msg.offset() or 0, msg.timestamp()[1])
        if specs:
            self._run(
                specs,
                event,
                event_key,
                only,
                attempt,
                where,
                msg.key(),
                headers,
                sink,
                outcome,
                state,
            )
        if folds:
            self.stateful.fold_all(
                folds, event, event_key, headers, only, attempt, where, sink, outcome, state
            )
        if windows:
            self.time.window_all(event, event_key, where, sink, outcome, state, only, headers)
        if state is not None:
            self.stateful.flush(state, sink, where[3], outcome)
        return outcome

    def _run(
        self,
        specs: list[ProcessorSpec],
        event: Any,
        event_key: Any,
        only: frozenset[str] | None,
        attempt: int,
        where: Where,
        key: bytes | None,
        headers: Headers,
        sink: Sink,
        outcome: Outcome,
        state: PartitionState | None,
    ) -> None:
        timing = self.chain.wants_timing
        for spec in specs:
            call = self.admit(spec, event, event_key, only, where, key, headers, state, outcome)
            if call is None:
                continue
            started = perf_counter() if timing else 0.0
            result: Any = None
            error: Exception | None = None
            try:
                result = self.call(call)
            except Exception as exc:  # noqa: BLE001 - user code; the handler decides
                error = exc
            seconds = perf_counter() - started if timing else 0.0
            self.finish(call, result, error, attempt, seconds, sink, outcome, state)

    # -- one processor's call: admission, the call, its outputs ---------------------------
    # Every processor's record goes through these, run here one at a time or concurrently
    # (see :mod:`streamkit.runtime.concurrency`).
    def selected(
        self, topic: str, headers: Headers, only: frozenset[str] | None, outcome: Outcome
    ) -> frozenset[str] | None:
        """The processors of ``topic`` a record is for (None: every one): a redriven
        record's own (``__streamkit.redrive.processor``), less those whose
        ``where_headers=`` its headers miss (counted as filtered: before decoding)."""
        if headers:
            only = redrive_target(headers) or only
        if topic in self.filters.headers:
            only = self.filters.allowed(topic, headers, only, outcome)
        return only

    def decoded(self, msg: Message, outcome: Outcome) -> tuple[Any, Any] | None:
        """The event and event key of ``msg``; or None: a tombstone of a topic that is not
        a change topic (filtered, once per processor of the topic), or bytes that do not
        decode (the failure goes to the handler). On a change topic a tombstone is handed
        on as a :class:`~streamkit.contracts.changes.Change` whose op is ``tombstone``."""
        topic, value = msg.topic() or "", msg.value()
        serdes = self.serdes[topic]
        if value is None and not serdes.changes:
            outcome.filtered += len(self.by_input.get(topic, ()))
            return None
        partition, offset = msg.partition() or 0, msg.offset() or 0
        try:
            event, event_key = serdes.decode_row(msg.key(), value, (topic, partition, offset))
        except SerializationError as exc:
            self.decide(Failure(Stage.DECODE, topic, partition, offset, exc), outcome)
            return None
        if value is None:  # the tombstone after a delete, handed on as such
            event = Change.tombstone(event_key)
        return event, event_key

    def admit(
        self,
        spec: ProcessorSpec,
        event: Any,
        event_key: Any,
        only: frozenset[str] | None,
        where: Where,
        key: bytes | None,
        headers: Headers,
        state: PartitionState | None,
        outcome: Outcome,
    ) -> Call | None:
        """``spec``'s call on ``event``, or None when it is not to run: not among
        ``only``, its ``where=`` misses, an inner table lookup finds no row (filtered), or
        its event id was seen (deduplicated)."""
        rows = self._admitted(spec, event, only, outcome)
        if rows is None:
            return None
        event_id = None
        if spec.dedupe is not None:
            event_id = spec.dedupe.event_id(event, headers)
            if event_id is not None and self.stateful.seen(state, spec.name, event_id):
                outcome.deduplicated += 1
                outcome.done.append(spec.name)
                return None
        args: tuple[Any, ...] = (event, *rows)
        timers = None
        if spec.takes_context:
            topic, partition, offset, timestamp = where
            timers = self.stateful.context_timers(spec, state, where, event_key)
            ctx = Context(
                topic=topic,
                partition=partition,
                offset=offset,
                timestamp=timestamp,
                key=event_key,
                headers=list(headers),
                processor=spec.name,
                timers=timers,
            )
            args = (*args, ctx)
        return Call(spec, args, where, key, event_key, event_id, timers)

    @staticmethod
    def call(call: Call) -> Any:
        """Run ``call`` here, one record at a time (an ``async def`` function awaited on
        this thread's event loop, with its timeout). Raises what the function raises."""
        result = call.spec.fn(*call.args)
        if call.spec.is_async:
            result = run_inline(result, call.spec)
        return result

    def finish(
        self,
        call: Call,
        result: Any,
        error: BaseException | None,
        attempt: int,
        seconds: float,
        sink: Sink,
        outcome: Outcome,
        state: PartitionState | None,
        *,
        recheck: bool = False,
    ) -> str:
        """What a call returned, into ``sink``: its outputs routed and written, its event
        id remembered, its time reported; or its error (raised, or a return value that
        cannot be routed) to the failure handler, what it set of timers undone.
        ``recheck``: the event id may have been seen since the call was admitted (a call
        of the same event finished first, in its lane or another), and then nothing is
        written, whether the call returned or raised.
        Returns how it ended: emitted, filtered, failed or deduplicated."""
        spec = call.spec
        seen = recheck and call.event_id is not None
        if seen and self.stateful.seen(state, spec.name, call.event_id or ""):
            outcome.deduplicated += 1  # whatever the call did: the event was handled
            return "deduplicated"
        emits = []
        if error is None:
            try:
                emits = route(spec, result)
            except Exception as exc:  # noqa: BLE001 - a routing mistake of the user
                error = exc
        if error is not None:
            if call.timers is not None:
                call.timers.discard()
            failure = Failure(Stage.PROCESS, *call.where[:3], error, spec.name, attempt=attempt)
            self.decide(failure, outcome)
            ended = "failed"
        else:
            ended = self.deliver(spec, emits, call.where, call.key, call.event_key, sink, outcome)
            if call.event_id is not None and ended != "failed":
                self.stateful.remember(state, spec.name, call.where, call.event_id, sink, outcome)
        if self.chain.wants_timing:
            self.chain.processed(spec.name, seconds, ended)
        return ended

    def _admitted(
        self, spec: ProcessorSpec, event: Any, only: frozenset[str] | None, outcome: Outcome
    ) -> list[Any] | None:
        """The table arguments of ``spec`` for ``event``, or None when ``spec`` is not to
        run on it (not among ``only``, its ``where=`` does not match, or an inner table
        lookup found no row: filtered)."""
        if (only is not None and spec.name not in only) or not self.filters.event_matches(
            spec.name, event, outcome
        ):
            return None
        if not spec.tables:
            return []
        rows = [lookup.resolve(self.tables[lookup.table.name], event) for lookup in spec.tables]
        if any(row is MISSING for row in rows):
            outcome.filtered += 1
            outcome.done.append(spec.name)
            return None
        return rows

    def table_record(
        self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None
    ) -> None:
        """A record of a table topic, decoded into the tables of that topic (a tombstone
        deletes its key; of a change topic, the row after the change, a delete deleting
        it). Raises :class:`~streamkit.errors.SerializationError`, located."""
        row, row_key = self.serdes[topic].decode_row(key, value, (topic, partition, offset))
        if isinstance(row, Change):  # a change topic: the row as it is now (None: gone)
            row = None if row.is_delete else row.after
        for data in self.tables_of.get(topic, ()):
            data.apply(partition, row_key, row)

    # -- time -----------------------------------------------------------------------------
    def fire(
        self,
        topic: str,
        state: PartitionState,
        sink: Sink,
        *,
        idle: bool,
        wall_until: int | None = None,
    ) -> Outcome:
        """Close the due windows (idle ones too when ``idle``) and fire the due timers of a
        partition of ``topic`` (wall-clock ones due at ``wall_until`` at the latest, when
        given). Under at least once, what that changed in the stores goes to their
        changelogs only once its outputs are acknowledged (``Outcome.acked``; see
        :meth:`PartitionState.hold_changes`); keys released before are written now."""
        outcome = Outcome()
        self.time.fire(topic, state, sink, outcome, idle=idle, wall_until=wall_until)
        if not state.transactional:
            held = state.hold_changes()
            if held:
                outcome.acked.append(partial(state.release, held))
        self.stateful.flush(state, sink, self.clock(), outcome)
        return outcome

    # -- failures -------------------------------------------------------------------------
    def decide(self, failure: Failure, outcome: Outcome) -> None:
        """Ask the failure handler about ``failure`` and record the decision in ``outcome``
        (a STOP decision raises :class:`~streamkit.errors.ProcessingFailedError`)."""
        spec = self.specs.get(failure.processor)
        decision = self.failure_handler.on_failure(failure)
        self.chain.failure(failure, decision)
        action = decision.action
        if action is Action.STOP:
            raise ProcessingFailedError(failure)
        if action is Action.SKIP:
            outcome.skipped += 1
        elif action is Action.RETRY and spec is not None and spec.retry_topics:
            target = self.topology.retry_topic(spec.name, failure.attempt - 1)
            if target is None:
                outcome.dead.append(failure)
            elif self._inline_retries:
                outcome.retry[failure.processor] = target.delay
            else:
                outcome.forward.append((failure, target.name, target.delay))
        elif action is Action.RETRY and failure.processor:
            outcome.retry[failure.processor] = decision.delay
        else:
            outcome.dead.append(failure)

    def dead_letter(
        self,
        failure: Failure,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None,
        source_timestamp: int,
        trace: Headers = (),
    ) -> OutRecord:
        """The DLQ record for ``failure`` (or, after too many redrives, the parked one);
        ``trace`` are the headers middleware added to the record's outputs."""
        parked = redrive_count(headers) >= self.app.max_redrives
        topology = self.topology
        topic = topology.parked(failure.topic) if parked else topology.dlq(failure.topic)
        return dead_letter_record(
            failure,
            topic,
            key,
            value,
            headers,
            app=self.app.name,
            group=self.app.group_id,
            source_timestamp=source_timestamp,
            trace=trace,
            now_ms=self.clock(),
        )

    def retry_record(
        self,
        failure: Failure,
        retry_topic: str,
        delay: float,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None,
        source_timestamp: int,
        trace: Headers = (),
    ) -> OutRecord:
        """The record that carries ``failure``'s input to ``retry_topic``, due after ``delay``."""
        due = self.clock() + int(delay * 1000)
        return retry_record(failure, retry_topic, due, key, value, headers, source_timestamp, trace)
