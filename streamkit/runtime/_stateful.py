"""The steps of the record path that read and write a partition's stores: dedupe checks
and aggregate folds, each change also written to the store's changelog."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streamkit.errors import KeyMismatchError, SerializationError
from streamkit.failures.failure import Failure, Stage
from streamkit.records import Headers
from streamkit.runtime.outcome import Outcome, Sink
from streamkit.runtime.serdes import TopicSerdes
from streamkit.state.aggregate import AggregateSpec, fold
from streamkit.state.partition import PartitionState
from streamkit.state.stores import Entry, encode_entry
from streamkit.topology import Topology

__all__ = ["StatefulSteps", "Where"]

Where = tuple[str, int, int, int]
"""(topic, partition, offset, timestamp) of the record being processed."""


class StatefulSteps:
    """Dedupe and folds of one app, given its topology, serdes, clock and failure handling."""

    def __init__(
        self,
        topology: Topology,
        serdes: dict[str, TopicSerdes],
        clock: Callable[[], int],
        decide: Callable[[Failure, Outcome], None],
    ) -> None:
        self.topology = topology
        self.serdes = serdes
        self.clock = clock
        self.decide = decide

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
        _, partition, offset, timestamp = where
        entry = Entry(True, offset, self.clock())
        store = Topology.dedupe_store(owner)
        state.put(store, event_id, entry)
        changelog = self.topology.changelog(store)
        error = sink(changelog, event_id.encode(), encode_entry(entry), None, timestamp, partition)
        if error is not None:
            outcome.produce_errors.append(error)

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
        for agg in folds:
            if only is None or agg.name in only:
                self._fold(agg, event, event_key, headers, attempt, where, sink, outcome, state)

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
    ) -> None:
        topic, partition, offset, timestamp = where
        state_key = agg.state_key(event, event_key)
        if state_key is None:
            outcome.filtered += 1
            return
        if agg.key is not None and (event_key is None or str(event_key) != state_key):
            how = f"field {agg.key!r}" if isinstance(agg.key, str) else "its key function"
            mismatch = KeyMismatchError(
                f"record key {event_key!r} is not its state key {state_key!r} ({how}) of "
                f"aggregate {agg.name}: folding it here would split that key's state across "
                f"partitions; key the records of {topic} by {how}"
            )
            self.decide(Failure(Stage.PROCESS, topic, partition, offset, mismatch, agg.name),
                        outcome)  # fmt: skip
            return
        event_id = agg.dedupe.event_id(event, headers) if agg.dedupe is not None else None
        if event_id is not None and self.seen(state, agg.name, event_id):
            outcome.deduplicated += 1
            outcome.done.append(agg.name)
            return
        try:
            current = state.get(agg.store, state_key, self.clock())
            entry, folded = fold(agg, current, event, offset, timestamp)
        except Exception as exc:  # noqa: BLE001 - the fold is user code
            failure = Failure(
                Stage.PROCESS, topic, partition, offset, exc, agg.name, attempt=attempt
            )
            self.decide(failure, outcome)
            return
        projection = None
        if agg.output is not None and entry is not None:
            try:
                projection = self.serdes[agg.output].value.encode(entry.state)
            except SerializationError as exc:
                located = exc.at(agg.output)
                self.decide(Failure(Stage.ENCODE, topic, partition, offset, located, agg.name,
                                    agg.output), outcome)  # fmt: skip
                return
        if folded:
            state.put(agg.store, state_key, entry)
        raw_key = state_key.encode()
        changelog = self.topology.changelog(agg.store)
        value = None if entry is None else encode_entry(entry)
        errors = [sink(changelog, raw_key, value, None, timestamp, partition)]
        if agg.output is not None:
            errors.append(sink(agg.output, raw_key, projection, None, timestamp))
        outcome.produce_errors += [error for error in errors if error is not None]
        if event_id is not None:
            self.remember(state, agg.name, where, event_id, sink, outcome)
        outcome.done.append(agg.name)
        outcome.emitted += 1
