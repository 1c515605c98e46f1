"""Settling one record's outcome: one walk for every engine, two kinds of settlement.

Whatever ran a record (a processor in the loop or beside it, a fold, a window; on a worker,
in memory, in a replay, in a share group), what it decided is carried out here, in one
order: outputs that could not be queued, outputs too large for the broker (decided as
failures), workflow steps reported, late records, dead letters, retry-topic records, a
blocking retry, and then the record is done.

What "cannot be written", "retry" and "done" mean is the settlement's:

* a consumer group's partition (:class:`~streamkit.runtime.task.PartitionTask`) settles by
  offsets: it holds the partition at the record and rewinds, or moves the committable
  offset past it;
* a share group's acquired record (:mod:`streamkit.engines.kafka.queue`) settles by
  acknowledgement: it releases the record (it comes again, with its delivery count as its
  attempt), or accepts it once its writes are acknowledged.
"""

from __future__ import annotations

from typing import Protocol

from streamkit.errors import OutputTooLargeError
from streamkit.failures.failure import Failure, Stage
from streamkit.records import Headers, Message
from streamkit.runtime._time import late_record
from streamkit.runtime.outcome import Outcome, OutRecord
from streamkit.runtime.pipeline import Pipeline

__all__ = ["Settlement", "settle"]


class Settlement(Protocol):
    """Where one record's outcome is carried out (see the module docstring)."""

    def write(self, record: OutRecord) -> bool:
        """Queue a record the outcome produces (a late record, a dead letter, a retry-topic
        record) with a delivery report of its own; False when it cannot be queued (the
        settlement has held or released the input: nothing more is done with it)."""
        ...

    def write_failed(self, reason: str) -> None:
        """An output of the record could not be queued: it must be processed again."""
        ...

    def wrote(self, kind: str, record: OutRecord, failure: Failure | None) -> None:
        """``record`` was queued: ``late``, ``dead_letter`` (of ``failure``) or ``forward``
        (to a retry topic), for counters and logs."""
        ...

    def retry(self, delays: dict[str, float], attempt: int) -> None:
        """Run the record again (the processors named, after their delays): ``attempt``
        failed."""
        ...

    def done(self) -> None:
        """The record is settled: what it wrote is all that is left to acknowledge."""
        ...


def settle(
    pipeline: Pipeline,
    settlement: Settlement,
    msg: Message,
    outcome: Outcome,
    headers: Headers,
    timestamp: int,
    attempt: int,
) -> None:
    """Carry out ``msg``'s ``outcome`` through ``settlement`` (see the module docstring).

    ``headers`` and ``timestamp`` are the record's (its origin's, for a retry record);
    ``attempt`` is 0 for a record of a retry topic (its retries go through topics).
    """
    topic, partition, offset = msg.topic() or "", msg.partition() or 0, msg.offset() or 0
    for error in outcome.produce_errors:
        if not error.too_large:
            settlement.write_failed(f"producing to {error.topic} failed: {error.reason}")
            return
        too_large = OutputTooLargeError(error.reason)
        failure = Failure(
            Stage.PRODUCE,
            topic,
            partition,
            offset,
            too_large,
            output_topic=error.topic,
            attempt=max(attempt, 1),
        )
        pipeline.decide(failure, outcome)
    if outcome.steps:
        pipeline.chain.steps(outcome.steps)
    for late in outcome.late:
        where = (topic, partition, offset)
        late_topic = pipeline.topology.late(late.store)
        record = late_record(late, late_topic, where, msg.key(), msg.value(), headers)
        if not settlement.write(record):
            return
        settlement.wrote("late", record, None)
        pipeline.chain.late(late.store, 1)
    trace = outcome.extra_headers
    for failure in outcome.dead:
        record = pipeline.dead_letter(failure, msg.key(), msg.value(), headers, timestamp, trace)
        if not settlement.write(record):
            return
        settlement.wrote("dead_letter", record, failure)
    for failure, retry_topic, delay in outcome.forward:
        record = pipeline.retry_record(
            failure, retry_topic, delay, msg.key(), msg.value(), headers, timestamp, trace
        )
        if not settlement.write(record):
            return
        settlement.wrote("forward", record, failure)
    if outcome.retry and attempt:
        settlement.retry(outcome.retry, attempt)
        return
    settlement.done()
