"""The steps of the record path that read and write a partition's stores: dedupe checks,
aggregate folds and the timers a record sets; :meth:`StatefulSteps.flush` writes every
change of a partition's stores to their changelogs, with the record it came from."""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter
from typing import Any

from streamkit.errors import KeyMismatchError, SerializationError
from streamkit.failures.failure import Failure, Stage
from streamkit.processor import Context, ProcessorSpec
from streamkit.records import Headers
from streamkit.runtime.outcome import Late, Outcome, Sink
from streamkit.runtime.serdes import TopicSerdes
from streamkit.state.aggregate import AggregateSpec, Routed, TooLate, fold, source_of
from streamkit.state.partition import PartitionState
from streamkit.state.stores import Entry
from streamkit.state.timers import Timers, timer_store
from streamkit.topology import Topology

__all__ = ["StatefulSteps", "Where", "key_mismatch"]

Where = tuple[str, int, int, int]
"""(topic, partition, offset, timestamp) of the record being processed."""


def key_mismatch(
    owner: str, key: object, record_key: object, state_key: str, topic: str
) -> KeyMismatchError | None:
    """The error when a record's Kafka key is not the state key it would be folded under
    (``key`` the declared one: None means the record key, which always matches)."""
    if key is None or (record_key is not None and str(record_key) == state_key):
        return None
    how = f"field {key!r}" if isinstance(key, str) else "its key function"
    return KeyMismatchError(
        f"record key {record_key!r} is not its state key {state_key!r} ({how}) of {owner}: "
        f"folding it here would split that key's state across partitions; key the records "
        f"of {topic} by {how}"
    )


class StatefulSteps:
    """Dedupe and folds of one app, given its topology, serdes, clock and failure handling."""

    def __init__(
        self,
        topology: Topology,
        serdes: dict[str, TopicSerdes],
        clock: Callable[[], int],
        decide: Callable[[Failure, Outcome], None],
        processed: Callable[[str, float, str], None] | None = None,
    ) -> None:
        self.topology = topology
        self.serdes = serdes
        self.clock = clock
        self.decide = decide
        self.processed = processed
        """Told each fold's duration and how it ended (middleware's ``on_processed``), when
        any middleware wants it: aggregates, gathers, joins, workflows and windows count
        like processors."""
        self.repartitioned = frozenset(topology.app.repartitioned)

    # -- dedupe ---------------------------------------------------------------------------
    def seen(self, state: PartitionState | None, owner: str, event_id: str) -> bool:
        """Whether ``owner`` (a processor or aggregate) already handled ``event_id`` within
        its dedupe window."""
        if state is None:  # a retried record whose origin partition is not held here
            return False
        return state.get(Topology.dedupe_store(owner), event_id, self.clock()) is not None

    def remember(
        self,
        state: PartitionState | None,
        owner: str,
        where: Where,
        event_id: str,
        sink: Sink,
        outcome: Outcome,
    ) -> None:
        """``owner`` handled ``event_id``: remember it, in the store and its changelog."""
        if state is None:  # a retried record whose origin partition is not held here
            return
        state.put(Topology.dedupe_store(owner), event_id, Entry(True, where[2], self.clock()))

    @staticmethod
    def flush(state: PartitionState, sink: Sink, timestamp: int, outcome: Outcome) -> None:
        """Write the changelog records of ``state``'s changes (part of the at-least-once
        unit of the record they came from)."""
        for changelog, key, value in state.changes():
            error = sink(changelog, key, value, None, timestamp, state.partition)
            if error is not None:
                outcome.produce_errors.append(error)

    # -- timers ---------------------------------------------------------------------------
    def context_timers(
        self,
        spec: ProcessorSpec | AggregateSpec,
        state: PartitionState | None,
        where: Where,
        key: Any,
    ) -> Timers | None:
        """The ``ctx.timers`` of a processor or aggregate with ``on_timer`` for the record at
        ``where`` (the partition's stream time moves on with it), for the record key or,
        in an aggregate, only the state key ``key``."""
        if spec.on_timer is None or state is None:
            return None
        store = timer_store(state, Topology.timer_store(spec.name))
        timestamp = where[3]
        store.advance(timestamp)
        bound = str(key) if isinstance(spec, AggregateSpec) else None
        return Timers(store, where[2], self.clock(), timestamp, key=key, bound=bound)

    # -- aggregates -----------------------------------------------------------------------
    def fold_all(
        self,
        folds: list[AggregateSpec],
        event: Any,
        event_key: Any,
        headers: Headers,
        only: frozenset[str] | None,
        attempt: int,
        where: Where,
        sink: Sink,
        outcome: Outcome,
        state: PartitionState | None,
    ) -> None:
        """Fold the event into each aggregate's state; failures go to the handler."""
        assert state is not None  # noqa: S101 - a partition with aggregates has state
        timed = self.processed
        for agg in folds:
            if only is not None and agg.name not in only:
                continue
            started = perf_counter() if timed is not None else 0.0
            ended = self._fold(agg, event, event_key, headers, attempt, where, sink, outcome, state)
            if timed is not None:
                timed(agg.name, perf_counter() - started, ended)

    def _fold(
        self,
        agg: AggregateSpec,
        event: Any,
        event_key: Any,
        headers: Headers,
        attempt: int,
        where: Where,
        sink: Sink,
        outcome: Outcome,
        state: PartitionState,
    ) -> str:
        """Fold the event into ``agg``'s state; how it ended (emitted: folded, filtered,
        failed, deduplicated or late)."""
        topic, partition, offset, timestamp = where
        state_key, event_id, ended = self._keyed(
            agg, event, event_key, headers, where, state, outcome
        )
        if state_key is None:
            return ended
        ctx = None
        if agg.takes_context:
            ctx = Context(
                topic=topic,
                partition=partition,
                offset=offset,
                timestamp=timestamp,
                key=state_key,
                headers=headers,
                processor=agg.name,
                timers=self.context_timers(agg, state, where, state_key),
            )
        try:
            current = state.get(agg.store, state_key, self.clock())
            source = source_of(headers) if agg.input in self.repartitioned else None
            entry, folded = fold(agg, current, event, offset, timestamp, ctx, source)
        except TooLate as late:  # (a join's) to the late topic, folded nowhere
            if ctx is not None and ctx.timers is not None:
                ctx.timers.discard()
            refused = Late(agg.store, late.window_end, late.watermark, timestamp)
            return self._late(agg, state, offset, refused, outcome)
        except Exception as exc:  # noqa: BLE001 - the fold is user code
            if ctx is not None and ctx.timers is not None:
                ctx.timers.discard()
            failure = Failure(
                Stage.PROCESS, topic, partition, offset, exc, agg.name, attempt=attempt
            )
            self.decide(failure, outcome)
            return "failed"
        try:
            projections = self.projections(agg, entry, state_key)
        except SerializationError as exc:
            if ctx is not None and ctx.timers is not None:
                ctx.timers.discard()
            self.decide(
                Failure(
                    Stage.ENCODE,
                    topic,
                    partition,
                    offset,
                    exc,
                    agg.name,
                    exc.where or agg.output or "",
                ),
                outcome,
            )
            return "failed"
        # Put again when not folded (a redelivery): its changelog record is written again,
        # in case the first write is what failed.
        state.put(agg.store, state_key, entry)
        self.publish(agg, entry if folded else None, projections, timestamp, sink, outcome)
        if event_id is not None:
            self.remember(state, agg.name, where, event_id, sink, outcome)
        outcome.done.append(agg.name)
        outcome.emitted += 1
        return "emitted" if folded else "deduplicated"

    def _keyed(
        self,
        agg: AggregateSpec,
        event: Any,
        event_key: Any,
        headers: Headers,
        where: Where,
        state: PartitionState,
        outcome: Outcome,
    ) -> tuple[str | None, str | None, str]:
        """The event's state key and event id for ``agg``; or no key, and how the record
        ended: without one (filtered), keyed otherwise than its state key (failed), or
        its event id seen (deduplicated)."""
        topic, partition, offset, _ = where
        state_key = agg.state_key(event, event_key)
        if state_key is None:
            outcome.filtered += 1
            return None, None, "filtered"
        mismatch = key_mismatch(f"aggregate {agg.name}", agg.key, event_key, state_key, topic)
        if mismatch is not None:
            failure = Failure(Stage.PROCESS, topic, partition, offset, mismatch, agg.name)
            self.decide(failure, outcome)
            return None, None, "failed"
        event_id = agg.dedupe.event_id(event, headers) if agg.dedupe is not None else None
        if event_id is not None and self.seen(state, agg.name, event_id):
            outcome.deduplicated += 1
            outcome.done.append(agg.name)
            return None, None, "deduplicated"
        return state_key, event_id, "emitted"

    @staticmethod
    def _late(
        agg: AggregateSpec, state: PartitionState, offset: int, late: Late, outcome: Outcome
    ) -> str:
        """A record the fold refused as too late: to the late topic, unless it is a
        redelivery of one handled before a crash whose key's memory was forgotten since
        (it was folded, or went to the late topic, then). How it ended."""
        if state.handled_before(agg.store, offset):
            outcome.done.append(agg.name)
            return "deduplicated"
        outcome.late.append(late)
        return "late"

    @staticmethod
    def publish(
        agg: AggregateSpec,
        entry: Entry | None,
        projections: list[tuple[str, bytes, bytes | None]],
        timestamp: int,
        sink: Sink,
        outcome: Outcome,
    ) -> None:
        """Write a new entry's ``projections`` (see :meth:`projections`) and report what
        it ran (a workflow's steps; ``entry`` None: nothing new ran)."""
        for out, key, value in projections:
            error = sink(out, key, value, None, timestamp)
            if error is not None:
                outcome.produce_errors.append(error)
        if agg.report is not None and entry is not None:
            outcome.steps += [(agg.name, *call) for call in agg.report(entry.state)]

    def projections(
        self, agg: AggregateSpec, entry: Entry | None, key: str
    ) -> list[tuple[str, bytes, bytes | None]]:
        """The records (topic, key, value) a new ``entry`` of ``key`` sends to the
        aggregate's output, or routes to its other outputs (a deletion: one tombstone,
        unless the aggregate projects its states to something else). Raises
        :class:`SerializationError`, located."""
        if entry is None:
            if agg.output is None or agg.project is not None:
                return []
            return [(agg.output, key.encode(), None)]
        if agg.output is None and not agg.outputs:
            return []
        found: list[tuple[str, bytes, bytes | None]] = []
        for projected in agg.projections(entry.state):
            topic, record_key, value = agg.output, key, projected
            if isinstance(projected, Routed):
                topic, record_key, value = projected.topic, projected.key, projected.value
            if topic is None:
                continue
            try:
                found.append((topic, record_key.encode(), self.serdes[topic].value.encode(value)))
            except SerializationError as exc:
                raise exc.at(topic) from None
        return found
