"""Concurrent processors: records that run beside each other, settled in the loop.

A processor with ``concurrency=N`` (or an ``async def`` one) does not run in the engine's
loop. Each of its records gets a chunk of its own (see :mod:`streamkit.runtime.offsets`)
opened in offset order when the record is taken, and a job on the processor's
:class:`~streamkit.runtime._scheduler.Scheduler`. The loop admits the record as it admits
one it runs itself (:meth:`Pipeline.selected`, :meth:`~Pipeline.decoded` and
:meth:`~Pipeline.admit`: redrive target, header and event filters, tables, event id,
context), and later, when the call has returned, writes its outputs with
:meth:`Pipeline.finish` and settles its outcome through the task, exactly as a record run
in the loop is; then the chunk is sealed. Middleware's record context is entered around
the call, where it runs (a thread, or the event loop's task). Chunks complete in order,
so the committed offset of a partition is never past its lowest incomplete record,
whatever finished after it.

Rules that keep every guarantee (checked at start-up, by :meth:`App.validate
<streamkit.app.App.validate>`):

* a blocking retry holds only its lane (its key under ``ordering="key"``): the job is
  called again after the delay, while other keys go on; the commit waits for it (a failure
  found after the call returned, an output that cannot be routed or encoded, is decided
  once the key's next record may already have run);
* a partition rewound (an output or dead letter that cannot be written) drops its jobs at
  and after the record, which come again from Kafka;
* records completed past the lowest incomplete one are run again after a crash
  (at-least-once: the duplicates are bounded by what was in flight);
* no ``exactly_once`` (a transaction spans a batch, and these records outlive it), no
  retry topics or timers, and a concurrent processor reads an input of its own (an
  aggregate or another processor on the same topic would see records out of order).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from queue import Empty, SimpleQueue
from time import monotonic
from typing import Any

from streamkit.processor import RecordInfo
from streamkit.records import TP, Headers, Message, message_headers, record_fields
from streamkit.runtime._scheduler import EventLoopThread, Job, Scheduler
from streamkit.runtime.offsets import Chunk
from streamkit.runtime.outcome import Outcome
from streamkit.runtime.pipeline import Call, Pipeline
from streamkit.runtime.task import PartitionTask

__all__ = ["ConcurrentRecords"]


@dataclass(eq=False, slots=True)
class _Record:
    """What settling a job needs: the record, its chunk, its task, the call admitted."""

    task: PartitionTask
    msg: Message
    chunk: Chunk
    headers: Headers
    call: Call
    info: RecordInfo | None
    """The record as middleware sees it (None: no middleware wraps records)."""


class ConcurrentRecords:
    """The concurrent processors of an engine (see the module docstring).

    ``inline``: calls run on the engine's thread, one at a time in the order they may
    start, when :meth:`complete` is called, with ``clock`` (seconds) timing the retries:
    the in-memory engine runs concurrent processors so, deterministically, through the
    same admission, lanes, retries and settling as a worker does.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        inline: bool = False,
        clock: Callable[[], float] = monotonic,
        settled: Callable[[Message, Outcome], None] | None = None,
        retried: Callable[[str, int, float], None] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self._settled = settled
        """Told each record settled, with its outcome (the in-memory engine's record)."""
        self._retried = retried
        """Told (processor, failed attempt, delay) of each retry."""
        self.done: SimpleQueue[Job] = SimpleQueue()
        specs = [s for s in pipeline.app.processors if s.concurrent]
        self.loop = None
        if not inline and any(s.is_async for s in specs):
            self.loop = EventLoopThread()
            # The loop thread waits for the interpreter while the engine's loop decodes and
            # writes; by default it gets it within 5 ms, which made a 20 ms call take ~30.
            sys.setswitchinterval(min(sys.getswitchinterval(), 0.001))
        around = self._around if pipeline.chain.wants_records else None
        self.schedulers = {
            s.input: Scheduler(s, self.done, self.loop, around=around, inline=inline, clock=clock)
            for s in specs
        }
        self.positions: dict[TP, int] = {}
        """Per partition, the offset after the last record taken."""

    @property
    def topics(self) -> Iterable[str]:
        """The inputs of concurrent processors."""
        return self.schedulers.keys()

    @property
    def pending(self) -> int:
        """Records taken and not yet settled."""
        return sum(s.pending for s in self.schedulers.values())

    @property
    def pending_bytes(self) -> int:
        """Bytes of the records taken and not yet settled."""
        return sum(s.pending_bytes for s in self.schedulers.values())

    def next_retry(self) -> float | None:
        """When the next retry is due (seconds of the clock), if one waits."""
        due = [t for t in (s.next_retry() for s in self.schedulers.values()) if t is not None]
        return min(due) if due else None

    # -- taking a record ------------------------------------------------------------------
    def submit(self, task: PartitionTask, msg: Message, chunk: Chunk) -> None:
        """Take ``msg`` (the only record of ``chunk``) through the pipeline's admission;
        settle it now when no call is needed (filtered, bytes that do not decode, a seen
        event id), else queue its call."""
        offset = msg.offset() or 0
        chunk.current, chunk.last = msg, offset
        self.positions[task.tp] = offset + 1
        scheduler = self.schedulers[task.topic]
        spec = scheduler.spec
        pipeline = self.pipeline
        headers = message_headers(msg)
        outcome = Outcome()
        call = None
        only = pipeline.selected(task.topic, headers, None, outcome)
        if only is None or spec.name in only:
            decoded = pipeline.decoded(msg, outcome)
            if decoded is not None:
                where = (task.topic, task.partition, offset, msg.timestamp()[1])
                event, event_key = decoded
                call = pipeline.admit(
                    spec, event, event_key, only, where, msg.key(), headers, task.state, outcome
                )
        info = self._info(msg, headers) if pipeline.chain.wants_records else None
        if call is None:
            if info is None:
                self._settle_record(task, msg, chunk, outcome, headers)
                return
            with pipeline.chain.record(info) as extra:
                outcome.extra_headers = list(extra)
                self._settle_record(task, msg, chunk, outcome, headers)
            return
        lane: Any = None
        if spec.ordering == "key":
            lane = (task.tp, msg.key())
        elif spec.ordering == "partition":
            lane = task.tp
        record = _Record(task, msg, chunk, headers, call, info)
        size = len(msg.value() or b"") + len(msg.key() or b"")
        scheduler.submit(Job(lane, call.args, record, size=size))

    def _info(self, msg: Message, headers: Headers) -> RecordInfo:
        return RecordInfo(
            msg.topic() or "",
            msg.partition() or 0,
            msg.offset() or 0,
            msg.key(),
            headers,
            self.pipeline.app.group_id,
        )

    def _around(self, job: Job) -> AbstractContextManager[list[tuple[str, bytes]]]:
        """Middleware's context of a call's record, entered where the call runs (around
        it, as it is around a record run in the loop): the headers it adds go to the
        record's outputs."""
        record: _Record = job.payload
        assert record.info is not None  # noqa: S101 - only when middleware wraps records
        return self.pipeline.chain.record(record.info)

    def _settle_record(
        self,
        task: PartitionTask,
        msg: Message,
        chunk: Chunk,
        outcome: Outcome,
        headers: Headers,
        attempt: int = 1,
    ) -> None:
        """Settle the record's outcome through its task and seal its chunk."""
        task.port.counters.filtered += outcome.filtered
        task.settle(msg, chunk, outcome, headers, msg.timestamp()[1], attempt)
        chunk.sealed = True
        if self._settled is not None:
            self._settled(msg, outcome)

    # -- settling finished calls ----------------------------------------------------------
    def complete(self, wait: float = 0.0) -> int:
        """Settle the calls that returned (waiting up to ``wait`` seconds for a first one);
        start due retries (inline: run the calls that may start first). Returns how many
        were settled."""
        for scheduler in self.schedulers.values():
            scheduler.due()
            scheduler.run_started()
        settled = 0
        try:
            job = self.done.get(timeout=wait) if wait > 0 else self.done.get_nowait()
            while True:
                self._settle(job)
                settled += 1
                for scheduler in self.schedulers.values():
                    scheduler.run_started()  # what the settled call let start
                job = self.done.get_nowait()
        except Empty:
            return settled

    def _settle(self, job: Job) -> None:
        record: _Record = job.payload
        task, msg, chunk = record.task, record.msg, record.chunk
        scheduler = self.schedulers[task.topic]
        if job.abandoned or task.closed:
            scheduler.release(job)
            return
        pipeline = self.pipeline
        outcome = Outcome(extra_headers=list(job.extra))
        pipeline.finish(
            record.call,
            job.result,
            job.error,
            job.attempt,
            job.seconds,
            chunk,
            outcome,
            task.state,
            recheck=True,
        )
        if outcome.retry:
            self._retry(job, task, outcome.retry[scheduler.spec.name], scheduler)
            return
        if task.state is not None:
            pipeline.stateful.flush(task.state, chunk, msg.timestamp()[1], outcome)
        self._settle_record(task, msg, chunk, outcome, record.headers, job.attempt)
        scheduler.release(job)

    def _retry(self, job: Job, task: PartitionTask, delay: float, scheduler: Scheduler) -> None:
        """A blocking retry of one record: its lane waits, the others go on."""
        record: _Record = job.payload
        offset = record.msg.offset() or 0
        job.attempt += 1
        task.port.counters.retries += 1
        waits = {"key": "key", "partition": "partition"}.get(scheduler.spec.ordering, "record")
        task.port.log.info(
            "retrying %s[%d]@%d (%s) in %.2fs, attempt %d (its %s waits)",
            *task.tp,
            offset,
            scheduler.spec.name,
            delay,
            job.attempt,
            waits,
            extra=record_fields(*task.tp, offset, scheduler.spec.name),
        )
        scheduler.retry(job, delay)
        if self._retried is not None:
            self._retried(scheduler.spec.name, job.attempt - 1, delay)

    # -- dropping and draining ------------------------------------------------------------
    def abandon(self, task: PartitionTask, offset: int = 0) -> int:
        """Drop the task's jobs at and after ``offset`` (a rewind, or 0: a revoke); their
        chunks are sealed as settling nothing. Returns how many were dropped."""
        scheduler = self.schedulers.get(task.topic)
        if scheduler is None:
            return 0

        def keep(job: Job) -> bool:
            record: _Record = job.payload
            if record.task is not task or (record.msg.offset() or 0) < offset:
                return True
            record.chunk.next_offset = None
            record.chunk.sealed = True
            return False

        return scheduler.abandon(keep)

    def drain(self, tasks: Iterable[PartitionTask], until: Callable[[], bool]) -> None:
        """Settle the calls running for ``tasks`` until none runs or ``until()`` says
        stop; drop what never started (it comes again from the last commit)."""
        chosen = {id(t) for t in tasks}

        def mine(job: Job) -> bool:
            return id(job.payload.task) in chosen

        while any(s.running(mine) for s in self.schedulers.values()) and not until():
            self.complete(wait=0.05)
        self.complete()
        for scheduler in self.schedulers.values():
            scheduler.abandon(lambda job: not mine(job) or _seal(job))

    def close(self) -> None:
        """Stop the thread pools and the event loop."""
        for scheduler in self.schedulers.values():
            scheduler.close()
        if self.loop is not None:
            self.loop.close()


def _seal(job: Job) -> bool:
    chunk = job.payload.chunk
    chunk.next_offset = None
    chunk.sealed = True
    return False
