"""Concurrent processors: records that run beside each other, settled in the loop.

A processor with ``concurrency=N`` (or an ``async def`` one) does not run in the engine's
loop. Each of its records gets a chunk of its own (see :mod:`streamkit.runtime.offsets`)
opened in offset order when the record is taken, and a job on the processor's
:class:`~streamkit.runtime._scheduler.Scheduler`. The loop decodes the record, checks its
event id, and later, when the call has returned, routes and writes its outputs, remembers
its event id and settles its outcome through the task, exactly as a record run in the loop
would be; then the chunk is sealed. Chunks complete in order, so the committed offset of a
partition is never past its lowest incomplete record, whatever finished after it.

Rules that keep every guarantee (checked at start-up by :func:`check_concurrency`):

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
from dataclasses import dataclass
from queue import Empty, SimpleQueue
from typing import TYPE_CHECKING, Any

from streamkit.app import App
from streamkit.errors import ConfigError, SerializationError
from streamkit.failures.dead_letter import redrive_target
from streamkit.failures.failure import Failure, Stage
from streamkit.processor import Context, RecordInfo, route
from streamkit.records import TP, Headers, Message, message_headers, record_fields
from streamkit.runtime._scheduler import EventLoopThread, Job, Scheduler
from streamkit.runtime.offsets import Chunk
from streamkit.runtime.outcome import Outcome

if TYPE_CHECKING:
    from streamkit.runtime.pipeline import Pipeline
    from streamkit.runtime.task import PartitionTask

__all__ = ["ConcurrentRecords", "check_concurrency"]


def check_concurrency(app: App) -> None:
    """Refuse, with one clear line, what concurrent processors cannot keep their promises
    with (see the module docstring)."""
    for spec in app.processors:
        if not spec.concurrent:
            continue
        kind = "an async processor" if spec.is_async else f"concurrency={spec.concurrency}"
        if app.guarantee == "exactly_once":
            raise ConfigError(
                f"processor {spec.name} has {kind}, which exactly_once cannot cover (a "
                "transaction commits a batch, and its records finish later): use "
                "at_least_once with dedupe=, or run it one record at a time"
            )
        others = [p.name for p in app.processors if p.input == spec.input and p is not spec]
        others += [a.name for a in app.aggregates if a.input == spec.input]
        others += [w.name for w in app.windows if w.input == spec.input]
        if others:
            raise ConfigError(
                f"processor {spec.name} has {kind} and shares its input {spec.input} with "
                f"{', '.join(others)}: a concurrent processor needs an input of its own "
                "(let it emit to a topic the others read)"
            )


@dataclass(eq=False, slots=True)
class _Record:
    """What settling a job needs: the record, its chunk, its task."""

    task: PartitionTask
    msg: Message
    chunk: Chunk
    headers: Headers
    event_key: Any
    event_id: str | None
    extra: list[tuple[str, bytes]]


class ConcurrentRecords:
    """The concurrent processors of an engine (see the module docstring)."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.done: SimpleQueue[Job] = SimpleQueue()
        specs = [s for s in pipeline.app.processors if s.concurrent]
        self.loop = None
        if any(s.is_async for s in specs):
            self.loop = EventLoopThread()
            # The loop thread waits for the interpreter while the engine's loop decodes and
            # writes; by default it gets it within 5 ms, which made a 20 ms call take ~30.
            sys.setswitchinterval(min(sys.getswitchinterval(), 0.001))
        self.schedulers = {s.input: Scheduler(s, self.done, self.loop) for s in specs}
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

    # -- taking a record ------------------------------------------------------------------
    def submit(self, task: PartitionTask, msg: Message, chunk: Chunk) -> None:
        """Take ``msg`` (the only record of ``chunk``): settle it now when no call is
        needed (a tombstone, bytes that do not decode, a seen event id), else queue it."""
        offset = msg.offset() or 0
        chunk.current, chunk.last = msg, offset
        self.positions[task.tp] = offset + 1
        scheduler = self.schedulers[task.topic]
        spec = scheduler.spec
        pipeline = self.pipeline
        headers = message_headers(msg)
        extra = self._extra(msg, headers) if pipeline.chain.wants_records else []
        value = msg.value()
        only = redrive_target(headers) if headers else None
        if task.topic in pipeline.filters.headers:
            only = pipeline.filters.allowed(task.topic, headers, only, Outcome())
        if value is None or (only is not None and spec.name not in only):
            outcome = Outcome(extra_headers=extra, filtered=int(value is None))
            self._settle_now(task, msg, chunk, outcome, headers)
            return
        topic, partition = task.tp
        key = msg.key()
        try:
            event, event_key = pipeline.serdes[topic].decode(key, value, (topic, partition, offset))
        except SerializationError as exc:
            outcome = Outcome(extra_headers=extra)
            pipeline.decide(Failure(Stage.DECODE, topic, partition, offset, exc), outcome)
            self._settle_now(task, msg, chunk, outcome, headers)
            return
        if not pipeline.filters.event_matches(spec.name, event, Outcome()):
            self._settle_now(task, msg, chunk, Outcome(extra_headers=extra, filtered=1), headers)
            return
        event_id = None
        if spec.dedupe is not None:
            event_id = spec.dedupe.event_id(event, headers)
            if event_id is not None and pipeline.stateful.seen(task.state, spec.name, event_id):
                outcome = Outcome(extra_headers=extra, deduplicated=1)
                self._settle_now(task, msg, chunk, outcome, headers)
                return
        args: tuple[Any, ...] = (event,)
        if spec.takes_context:
            ctx = Context(
                topic=topic, partition=partition, offset=offset, timestamp=msg.timestamp()[1],
                key=event_key, headers=list(headers), processor=spec.name,
            )  # fmt: skip
            args = (event, ctx)
        lane: Any = None
        if spec.ordering == "key":
            lane = (task.tp, key)
        elif spec.ordering == "partition":
            lane = task.tp
        record = _Record(task, msg, chunk, headers, event_key, event_id, extra)
        scheduler.submit(Job(lane, args, record, size=len(value) + len(key or b"")))

    def _extra(self, msg: Message, headers: Headers) -> list[tuple[str, bytes]]:
        """Headers middleware adds to the record's outputs (its context is entered and left
        here: it does not span the call, which runs elsewhere)."""
        chain = self.pipeline.chain
        info = RecordInfo(
            msg.topic() or "", msg.partition() or 0, msg.offset() or 0, msg.key(), headers,
            self.pipeline.app.group_id,
        )  # fmt: skip
        with chain.record(info) as extra:
            return list(extra)

    def _settle_now(
        self, task: PartitionTask, msg: Message, chunk: Chunk, outcome: Outcome, headers: Headers
    ) -> None:
        task.port.counters.filtered += outcome.filtered
        task.settle(msg, chunk, outcome, headers, msg.timestamp()[1], 1)
        chunk.sealed = True

    # -- settling finished calls ----------------------------------------------------------
    def complete(self, wait: float = 0.0) -> int:
        """Settle the calls that returned (waiting up to ``wait`` seconds for a first one);
        start due retries. Returns how many were settled."""
        for scheduler in self.schedulers.values():
            scheduler.due()
        settled = 0
        try:
            job = self.done.get(timeout=wait) if wait > 0 else self.done.get_nowait()
            while True:
                self._settle(job)
                settled += 1
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
        spec, pipeline = scheduler.spec, self.pipeline
        offset, timestamp = msg.offset() or 0, msg.timestamp()[1]
        where = (task.topic, task.partition, offset, timestamp)
        outcome = Outcome(extra_headers=record.extra)
        ended = "failed"
        try:
            emits = route(spec, job.result) if job.error is None else None
        except Exception as exc:  # noqa: BLE001 - a routing mistake of the user
            job.error, emits = exc, None
        if emits is None:
            error = job.error or RuntimeError("no result")
            failure = Failure(Stage.PROCESS, *where[:3], error, spec.name, attempt=job.attempt)
            pipeline.decide(failure, outcome)
        elif record.event_id is not None and pipeline.stateful.seen(
            task.state, spec.name, record.event_id
        ):
            outcome.deduplicated += 1  # the same event id finished first, in another lane
            ended = "deduplicated"
        else:
            ended = pipeline.deliver(spec, emits, where, msg.key(), record.event_key, chunk,
                                     outcome)  # fmt: skip
            if record.event_id is not None and ended != "failed":
                pipeline.stateful.remember(task.state, spec.name, where, record.event_id, chunk,
                                           outcome)  # fmt: skip
        if pipeline.chain.wants_timing and ended != "deduplicated":
            pipeline.chain.processed(spec.name, job.seconds, ended)
        if outcome.retry:
            self._retry(job, task, outcome.retry[spec.name], scheduler)
            return
        if task.state is not None:
            pipeline.stateful.flush(task.state, chunk, timestamp, outcome)
        task.port.counters.filtered += outcome.filtered
        task.settle(msg, chunk, outcome, record.headers, timestamp, job.attempt)
        chunk.sealed = True
        scheduler.release(job)

    def _retry(self, job: Job, task: PartitionTask, delay: float, scheduler: Scheduler) -> None:
        """A blocking retry of one record: its lane waits, the others go on."""
        record: _Record = job.payload
        offset = record.msg.offset() or 0
        job.attempt += 1
        task.port.counters.retries += 1
        task.port.log.info(
            "retrying %s[%d]@%d (%s) in %.2fs, attempt %d (its %s waits)",
            *task.tp, offset, scheduler.spec.name, delay, job.attempt,
            "key" if scheduler.spec.ordering == "key" else "partition"
            if scheduler.spec.ordering == "partition" else "record",
            extra=record_fields(*task.tp, offset, scheduler.spec.name),
        )  # fmt: skip
        scheduler.retry(job, delay)

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
