"""The per-partition task: everything about one assigned input partition, in one object.

A task owns its partition's offsets (chunks in flight and the committable offset), its
hold (a blocking retry, a retry record not yet due, an unwritable DLQ or output), its
pending retry, and its stores. Every engine (the Kafka worker, the in-memory engine behind
``TestDriver``, shadow replay) hands its records to tasks and lets them settle each
outcome through the same :meth:`PartitionTask.settle` (the walk of
:mod:`streamkit.runtime.settle`, by offsets; a share group's worker walks it by
acknowledgement); an engine only supplies a clock, a sink (the chunk) and what holding a
partition means to it (the :class:`Port`). Revoking
a partition closes its task; there is no per-partition dictionary elsewhere to forget.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from streamkit.errors import OutputTooLargeError
from streamkit.failures.failure import Failure
from streamkit.failures.retry import retry_origin
from streamkit.records import TP, Headers, Message, Record, message_headers, record_fields
from streamkit.runtime.offsets import Chunk, DeliveryFailure, LostOutput, PartitionOffsets
from streamkit.runtime.outcome import Outcome, OutRecord
from streamkit.runtime.pipeline import Pipeline
from streamkit.runtime.port import Backoff, Counters, Hold, RetryState
from streamkit.runtime.settle import settle
from streamkit.state.partition import PartitionState

__all__ = ["PartitionTask", "Port", "describe_failure"]


class Port(Protocol):
    """What a task needs of the engine that runs it."""

    log: logging.Logger
    counters: Counters

    def now_ms(self) -> int:
        """The engine's wall clock, in milliseconds."""
        ...

    def pause(self, task: PartitionTask, hold: Hold) -> None:
        """Deliver nothing more of the task's partition; when resumed, start again at
        ``hold.offset``."""
        ...

    def resume(self, task: PartitionTask) -> None:
        """Deliver the task's partition again."""
        ...

    def caught_up(self, task: PartitionTask) -> bool:
        """Whether no record of the task's partition waits to be handled (windows are
        idle only then)."""
        ...

    def read_ends(self, tps: list[TP]) -> dict[TP, int]:
        """The end offset now (asked of the broker, not cached) of each of ``tps``."""
        ...

    def read_to(self, ends: dict[TP, int]) -> bool:
        """Whether every record before ``ends`` was handled, and what was produced from
        them acknowledged: here, or (a partition another worker holds) by the group."""
        ...

    def feeder_partitions(self, topics: frozenset[str]) -> list[TP]:
        """Every partition of ``topics`` (the topics routed into a partition), wherever
        it is handled."""
        ...

    def state_of(self, tp: TP) -> PartitionState | None:
        """The state of partition ``tp`` if this engine holds it (a retry record is
        processed with its origin partition's state)."""
        ...


class PartitionTask:
    """One assigned input partition (see the module docstring)."""

    def __init__(
        self, tp: TP, pipeline: Pipeline, port: Port, state: PartitionState | None = None
    ) -> None:
        self.tp = tp
        self.topic, self.partition = tp
        self.pipeline = pipeline
        self.port = port
        self.state = state
        self.offsets = PartitionOffsets()
        self.committed: int | None = None
        self.retrying: RetryState | None = None
        self.hold: Hold | None = None
        self.backoff = Backoff()
        self.exact_until: int | None = None
        """Records up to this offset get a delivery report each (after a lost output)."""
        self.closed = False
        self.last_rewind: str | None = None
        """Why the partition was last rewound (an infrastructure failure), if ever."""
        self._retry_source = self.topic in pipeline.retry_topics
        self.fast = None if self._retry_source else pipeline.fast_path(self.topic)
        self.skip = None if self._retry_source else pipeline.filters.skipper(self.topic)
        """Tells, from the headers alone, that no processor wants a record."""
        self.timed = state is not None and pipeline.time.has_time(self.topic)
        """Whether windows close or timers fire in this partition."""
        self.time_after = 0
        """No window closes or timer fires before this (ms): time's outputs failed."""
        self.wall_cleared = -1
        """Wall-clock timers due at or before this (ms) may fire: the partition, and the
        partitions here of the topics routed into it, had then handled every record that
        was in Kafka at that time (see :meth:`_cleared`)."""
        self._fence: tuple[int, dict[TP, int], bool] | None = None
        """(when it was set, the ends to read to, whether they are this partition's)."""
        self._feeders = pipeline.feeders.get(self.topic, frozenset())

    # -- records --------------------------------------------------------------------------
    def handle(self, msg: Message, chunk: Chunk) -> Outcome | None:
        """Process one consumed record of this partition into ``chunk`` and settle it.

        Returns the outcome, or None when the fast path finished the record plainly.
        """
        offset = msg.offset() or 0
        chunk.current = msg
        chunk.last = offset
        if self.skip is not None and self.skip(msg):  # where_headers: nobody wants it
            chunk.next_offset = offset + 1
            return None
        if self.fast is not None and self.retrying is None:
            end, outcome = self.fast((msg,), 0, chunk)
            if end:
                if outcome is not None:
                    self.settle(msg, chunk, outcome, message_headers(msg), msg.timestamp()[1], 1)
                return outcome
        if self._retry_source:
            return self._handle_retry_record(msg, chunk)
        attempt, only = 1, None
        retrying = self.retrying
        if retrying is not None and retrying.offset == offset:
            attempt, only = retrying.attempt, retrying.only
        headers = message_headers(msg)
        outcome = self.pipeline.process(
            msg, chunk, headers=headers, state=self.state, attempt=attempt, only=only
        )
        self.port.counters.filtered += outcome.filtered
        self.settle(msg, chunk, outcome, headers, msg.timestamp()[1], attempt)
        state = self.state
        if self.timed and self.hold is None and state is not None:
            time = self.pipeline.time  # did the record move the stream time past something?
            if outcome.time_due or time.timers_due(self.topic, state):
                self.fire(chunk, idle=False)
        return outcome

    def handle_run(self, messages: Sequence[Message], start: int, chunk: Chunk) -> int:
        """Process ``messages[start]`` (this partition's, without error) into ``chunk``,
        and the records after it of this partition as long as the fast path takes them
        (see :mod:`streamkit.runtime._fast`); settle each. Returns the index of the first
        record not handled."""
        fast = self.fast
        if fast is not None and self.retrying is None and self.skip is None:
            end, outcome = fast(messages, start, chunk)
            if outcome is not None:
                msg = messages[end - 1]
                self.settle(msg, chunk, outcome, message_headers(msg), msg.timestamp()[1], 1)
            if end > start:
                return end
        self.handle(messages[start], chunk)
        return start + 1

    def _handle_retry_record(self, msg: Message, chunk: Chunk) -> Outcome | None:
        offset = msg.offset() or 0
        origin = retry_origin(message_headers(msg))
        if origin is None:
            self.port.log.error(
                "%s[%d]@%d is not a streamkit retry record; skipped", *self.tp, offset
            )
            chunk.next_offset = offset + 1
            return None
        wait_ms = origin.due_ms - self.port.now_ms()
        if wait_ms > 0:
            waits = ((origin.processor, origin.attempt - 1, wait_ms / 1000),)
            self.hold_at(offset, wait_ms / 1000, waits)
            return None
        at_origin = Record(
            origin.topic,
            origin.partition,
            origin.offset,
            origin.timestamp,
            msg.key(),
            msg.value(),
            origin.headers,
        )
        outcome = self.pipeline.process(
            at_origin,
            chunk,
            headers=origin.headers,
            attempt=origin.attempt,
            only=frozenset({origin.processor}),
            state=self.port.state_of((origin.topic, origin.partition)),
        )
        self.settle(msg, chunk, outcome, origin.headers, origin.timestamp, 0)
        return outcome

    def settle(
        self,
        msg: Message,
        chunk: Chunk,
        outcome: Outcome,
        headers: Headers,
        timestamp: int,
        attempt: int,
    ) -> None:
        """Carry out one record's outcome by offsets (see :mod:`streamkit.runtime.settle`):
        dead letters, retry-topic and late records, a blocking retry (the partition held
        at the record); then advance the partition past the record, or hold it there.

        ``headers`` and ``timestamp`` are the record's (its origin's, for a retry record);
        ``attempt`` is 0 for a record of a retry topic (its retries go through topics).
        """
        if (
            outcome.produce_errors
            or outcome.late
            or outcome.dead
            or outcome.forward
            or outcome.retry
            or outcome.steps
        ):
            settlement = _ByOffset(self, chunk, msg.offset() or 0)
            settle(self.pipeline, settlement, msg, outcome, headers, timestamp, attempt)
            return
        self.retrying = None
        chunk.next_offset = (msg.offset() or 0) + 1

    def _reroute(self, chunk: Chunk, offset: int, record: OutRecord) -> bool:
        """Produce a dead-letter or retry record; when it cannot be queued, hold here."""
        error = chunk.reroute(record)
        if error is None:
            return True
        self.rewind(offset, f"cannot write to {chunk.target(record[0])}: {error.reason}")
        return False

    # -- time -----------------------------------------------------------------------------
    def wall_due(self, now_ms: int) -> bool:
        """Whether a wall-clock timer, or an idle window while the partition is caught up,
        is due (the cheap checks first: the engine asks on every loop)."""
        if not self.timed or self.state is None or self.hold is not None:
            return False
        if now_ms < self.time_after:
            return False
        if self.state.released:  # changelog writes that waited for time's outputs
            return True
        timer, idle = self.pipeline.time.next_wall(self.topic, self.state)
        if timer is not None and timer <= now_ms and self._cleared(timer, now_ms):
            return True
        return idle is not None and idle <= now_ms and self.port.caught_up(self)

    def _cleared(self, due: int, now_ms: int) -> bool:
        """Whether a wall-clock timer due at ``due`` may fire: only once everything that
        was in Kafka when it came due is handled, in this partition and in every
        partition of the topics routed into it, whichever worker holds it. So an answer
        written before a wait's deadline but read late (a worker was down, or behind)
        still comes before the timeout: an outage does not change what times out. First
        the routers' inputs are read (here) or committed (by the group) to their ends of
        ``now_ms``, then this partition to its end after that; a fence set at ``now_ms``
        clears every timer due by then."""
        if due <= self.wall_cleared:
            return True
        if self._fence is None:
            feeders = self.port.feeder_partitions(self._feeders)
            targets, own = (feeders, False) if feeders else ([self.tp], True)
            self._fence = (now_ms, self.port.read_ends(targets), own)
        at, ends, own = self._fence
        if not self.port.read_to(ends):
            return False
        if not own:  # the routers' inputs are read: now this partition, to its end now
            ends = self.port.read_ends([self.tp])
            self._fence = (at, ends, True)
            if not self.port.read_to(ends):
                return False
        self._fence = None
        self.wall_cleared = at
        return due <= at

    def fire(self, chunk: Chunk, *, idle: bool | None = None) -> None:
        """Close the due windows (idle ones when the partition is caught up, or as
        ``idle`` says) and fire the due timers into ``chunk``."""
        if self.state is None or self.closed or self.port.now_ms() < self.time_after:
            return
        if idle is None:
            idle = self.port.caught_up(self)
        outcome = self.pipeline.fire(
            self.topic, self.state, chunk, idle=idle, wall_until=self.wall_cleared
        )
        chunk.undo += outcome.undo
        chunk.acked += outcome.acked
        if outcome.steps:
            self.pipeline.chain.steps(outcome.steps)
        errors = [e.reason for e in outcome.produce_errors]
        for record in outcome.reroutes:
            error = chunk.reroute(record)
            if error is not None:
                errors.append(error.reason)
            else:
                self.port.counters.dead_letters += 1
        if errors:
            self._time_failed(chunk, errors[0])

    def _time_failed(self, chunk: Chunk, reason: str) -> None:
        """What time produced could not be written: the closed windows are put back and
        close again after a growing wait (their results are written then)."""
        for undo in chunk.undo:
            undo()
        chunk.undo.clear()
        delay = self.backoff.next()
        self.time_after = self.port.now_ms() + int(delay * 1000)
        self.port.counters.rewinds += 1
        self.last_rewind = reason
        self.port.log.warning(
            "writing what time closed or fired in %s[%d] failed (%s); again in %.0fs",
            *self.tp,
            reason,
            delay,
        )

    # -- deliveries that failed after the fact --------------------------------------------
    def delivery_failed(self, chunk: Chunk, item: DeliveryFailure | LostOutput) -> None:
        """A produce of ``chunk`` failed after it was handled: dead-letter the input whose
        output can never be written, or rewind to the record and hold."""
        if self.closed:
            return  # revoked meanwhile: the new owner reprocesses from the last commit
        if chunk.first < 0:  # what time produced: no record to go back to
            self._time_failed(chunk, describe_failure(item))
            return
        for undo in chunk.undo:  # closed windows close again after the records' replay
            undo()
        chunk.undo.clear()
        if isinstance(item, LostOutput):
            first, last = chunk.first, chunk.last
            self.exact_until = max(last, self.exact_until or last)
            self.rewind(
                first,
                f"an output write to {item.output_topic} failed ({item.error}) for one of "
                f"offsets {first}-{last}, processed again with a delivery report each",
            )
            return
        failure, msg = item.failure, item.message
        if not item.internal and isinstance(failure.error, OutputTooLargeError):
            outcome = Outcome()
            self.pipeline.decide(failure, outcome)
            if not outcome.dead:
                return
            record = self.pipeline.dead_letter(
                outcome.dead[0], msg.key(), msg.value(), message_headers(msg), msg.timestamp()[1]
            )
            chunk.current = msg
            if chunk.reroute(record) is None:
                self.port.counters.dead_letters += 1
                return
        what = "dead-letter/retry topic" if item.internal else "output"
        self.rewind(failure.offset, f"{what} write failed: {failure.error}")

    # -- holding the partition ------------------------------------------------------------
    def rewind(self, offset: int, reason: str) -> None:
        """Hold at ``offset`` with a growing backoff: nothing at or after it is committed
        until it is processed again. Failures that come together (a chunk's records) share
        one step of the backoff."""
        delay = self.backoff.current if self.hold is not None else 0.0
        delay = delay or self.backoff.next()
        self.port.counters.rewinds += 1
        self.last_rewind = reason
        self.port.log.warning(
            "%s; holding %s[%d] at offset %d, retrying in %.0fs (nothing after it is committed)",
            reason,
            *self.tp,
            offset,
            delay,
            extra=record_fields(*self.tp, offset),
        )
        self.offsets.cap(offset)
        self.retrying = None
        self.hold_at(offset, delay)

    def hold_at(
        self, offset: int, delay: float, waits: tuple[tuple[str, int, float], ...] = ()
    ) -> None:
        """Deliver nothing of this partition for ``delay`` seconds, then start at ``offset``.

        A partition already held at an earlier offset stays there: a hold never moves a
        partition forward past records that must be processed again.
        """
        if self.hold is not None:
            offset = min(offset, self.hold.offset)
        self.hold = Hold(offset, self.port.now_ms() + int(delay * 1000), waits)
        self.port.pause(self, self.hold)

    def due(self, now_ms: int) -> bool:
        """Whether the hold is over at ``now_ms``."""
        return self.hold is not None and self.hold.until_ms <= now_ms

    def release(self) -> None:
        """End the hold: the engine delivers the partition again from the held offset."""
        if self.hold is not None:
            self.hold = None
            self.port.resume(self)

    def committed_at(self, offset: int) -> None:
        """``offset`` was committed: remembered, and the next infrastructure wait starts
        small again."""
        self.committed = offset
        self.backoff.reset()

    def close(self) -> None:
        """The partition was revoked or lost: release the hold, close the stores."""
        self.closed = True
        self.release()
        if self.state is not None:
            self.state.close()

    def __repr__(self) -> str:
        return f"PartitionTask({self.topic}[{self.partition}], {self.offsets!r})"


class _ByOffset:
    """A record of a consumer group's partition, settled by offsets (see
    :class:`~streamkit.runtime.settle.Settlement`)."""

    __slots__ = ("chunk", "offset", "task")

    def __init__(self, task: PartitionTask, chunk: Chunk, offset: int) -> None:
        self.task = task
        self.chunk = chunk
        self.offset = offset

    def write(self, record: OutRecord) -> bool:
        """Queue ``record``; when it cannot be, hold the partition here and rewind."""
        return self.task._reroute(self.chunk, self.offset, record)

    def write_failed(self, reason: str) -> None:
        """Hold the partition at the record: it is processed again."""
        self.task.rewind(self.offset, reason)

    def wrote(self, kind: str, record: OutRecord, failure: Failure | None) -> None:
        """Count it (and log a dead letter)."""
        counters = self.task.port.counters
        if kind == "late":
            counters.late += 1
        elif kind == "forward":
            counters.retry_forwards += 1
        else:
            counters.dead_letters += 1
            assert failure is not None  # noqa: S101 - a dead letter has its failure
            self.task.port.log.warning(
                "dead-lettered to %s: %s",
                self.chunk.target(record[0]),
                failure.describe(),
                extra=record_fields(
                    failure.topic, failure.partition, failure.offset, failure.processor
                ),
            )

    def retry(self, delays: dict[str, float], attempt: int) -> None:
        """A blocking retry: hold the partition at the record for the longest delay."""
        task, offset = self.task, self.offset
        task.retrying = RetryState(offset, attempt + 1, frozenset(delays))
        delay = max(delays.values())
        task.port.counters.retries += len(delays)
        names = ", ".join(delays)
        task.port.log.info(
            "retrying %s[%d]@%d (%s) in %.2fs, attempt %d",
            *task.tp,
            offset,
            names,
            delay,
            attempt + 1,
            extra=record_fields(*task.tp, offset, names),
        )
        waits = tuple((name, attempt, wait) for name, wait in delays.items())
        task.hold_at(offset, delay, waits)
        self.chunk.next_offset = offset

    def done(self) -> None:
        """The partition moves past the record."""
        self.task.retrying = None
        self.chunk.next_offset = self.offset + 1


def describe_failure(item: DeliveryFailure | LostOutput) -> str:
    """One line for a failed delivery."""
    if isinstance(item, LostOutput):
        return f"an output write to {item.output_topic} failed ({item.error})"
    return item.failure.describe()
