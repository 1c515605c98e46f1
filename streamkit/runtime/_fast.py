"""The fast path: a tight loop over a run of records for the most common processor shape.

The shape: one processor on the topic, returning one value (or None) for its single
output with the input's key format; no context, aggregates, dedupe, patterns, concurrency
or middleware. The loop takes the records of one partition that follow each other in a
batch: one Python call for the run instead of three or four per record, and plain outputs
go straight to the engine's producer when the chunk offers it (:meth:`Chunk.direct`).
It stops at a record it does not take (another partition, an error, a tombstone: the
task handles that one record by record) and after a record whose
:class:`~streamkit.runtime.outcome.Outcome` needs settling (the task settles it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from streamkit.errors import SerializationError
from streamkit.failures.failure import Failure, Stage
from streamkit.processor import Emit, ProcessorSpec, route
from streamkit.records import Message
from streamkit.runtime._time import Deliver
from streamkit.runtime.offsets import Chunk
from streamkit.runtime.outcome import Outcome
from streamkit.runtime.serdes import TopicSerdes
from streamkit.topic import Topic

__all__ = ["FastCounts", "FastPath", "compile_fast_path"]

FastPath = Callable[[Sequence[Message], int, Chunk], tuple[int, Outcome | None]]
"""``(messages, start, chunk)``: handles ``messages[start]`` (which must be the
partition's and carry no error) and the records after it of the same partition, until
one it does not take. Returns ``(end, outcome)``: ``messages[start:end]`` are handled,
and ``outcome``, when not None, is the one of ``messages[end - 1]``, not yet settled.
``end == start`` when the first record is not one it takes."""


@dataclass
class FastCounts:
    """What the fast paths of an app count as they go."""

    filtered: int = 0
    """Records whose processor returned nothing."""


_ROUTED = (Emit, list, tuple)
"""Processor results that name their outputs or fan out (not a single value)."""


def compile_fast_path(  # noqa: PLR0915 - its loop below
    spec: ProcessorSpec,
    topic: str,
    *,
    topics: Mapping[str, Topic],
    serdes: Mapping[str, TopicSerdes],
    decide: Callable[[Failure, Outcome], None],
    deliver: Deliver,
    counts: FastCounts,
) -> FastPath | None:
    """The fast path of ``spec`` on ``topic``, or None when it does not have the shape:
    with the app's ``topics`` and ``serdes``, its failure handling (``decide``) and
    emitting (``deliver``) for what leaves the shape, counting in ``counts``."""
    if spec.takes_context or spec.dedupe is not None or spec.output is None or spec.concurrent:
        return None
    if spec.where is not None or spec.where_headers is not None:
        return None
    if topics[spec.output].key != topics[topic].key:
        return None
    decode = serdes[topic].value.decode
    encode = serdes[spec.output].value.encode
    fn, output = spec.fn, spec.output

    def failed(failure: Failure) -> Outcome:
        outcome = Outcome()
        decide(failure, outcome)
        return outcome

    # One function on purpose, one exit per way a record can end: a call per record costs.
    def run(  # noqa: PLR0911, PLR0912, PLR0915
        messages: Sequence[Message], start: int, chunk: Chunk
    ) -> tuple[int, Outcome | None]:
        partition = messages[start].partition() or 0
        direct = chunk.direct()
        produce, acknowledged = direct if direct is not None else (None, None)
        end = len(messages)
        i = start
        done: Message | None = None
        while i < end:
            msg = messages[i]
            if msg.partition() != partition or msg.topic() != topic or msg.error() is not None:
                break
            value = msg.value()
            if value is None:  # a tombstone: the task's record-by-record path says what
                break
            i += 1
            offset = msg.offset() or 0
            try:
                event = decode(value)
            except SerializationError as exc:
                located = exc.at(topic, partition, offset)
                return _at(
                    chunk,
                    done,
                    msg,
                    i,
                    failed(Failure(Stage.DECODE, topic, partition, offset, located)),
                )
            try:
                result = fn(event)
            except Exception as exc:  # noqa: BLE001 - user code; the handler decides
                return _at(
                    chunk,
                    done,
                    msg,
                    i,
                    failed(Failure(Stage.PROCESS, topic, partition, offset, exc, spec.name)),
                )
            if result is None:
                counts.filtered += 1
                done = msg
                continue
            timestamp = msg.timestamp()[1]
            key = msg.key()
            if type(result) is not dict and isinstance(result, _ROUTED):
                chunk.current = msg
                try:
                    emits = route(spec, result)
                except Exception as exc:  # noqa: BLE001 - a routing mistake of the user
                    return _at(
                        chunk,
                        done,
                        msg,
                        i,
                        failed(Failure(Stage.PROCESS, topic, partition, offset, exc, spec.name)),
                    )
                outcome = Outcome()
                where = (topic, partition, offset, timestamp)
                deliver(spec, emits, where, key, None, chunk, outcome)
                if outcome.dead or outcome.retry or outcome.produce_errors:
                    return _at(chunk, done, msg, i, outcome)
                done = msg
                continue
            try:
                encoded = encode(result)
            except SerializationError as exc:
                failure = Failure(
                    Stage.ENCODE, topic, partition, offset, exc.at(output), spec.name, output
                )
                return _at(chunk, done, msg, i, failed(failure))
            if produce is not None and timestamp > 0:
                chunk.pending += 1
                try:
                    produce(output, encoded, key, -1, acknowledged, None, timestamp)
                    done = msg
                    continue
                except Exception:  # noqa: BLE001 - not queued: the chunk's own path says why
                    chunk.pending -= 1
            chunk.current = msg
            error = chunk(output, key, encoded, None, timestamp)
            if error is not None:
                outcome = Outcome()
                outcome.produce_errors.append(error)
                return _at(chunk, done, msg, i, outcome)
            done = msg
        if done is not None:
            last = done.offset() or 0
            chunk.current, chunk.last, chunk.next_offset = done, last, last + 1
        return i, None

    return run


def _at(
    chunk: Chunk, done: Message | None, msg: Message, end: int, outcome: Outcome
) -> tuple[int, Outcome]:
    """The run ends at ``msg``, whose outcome its task settles; ``done`` is the run's last
    record handled before it."""
    if done is not None:
        chunk.next_offset = (done.offset() or 0) + 1
    chunk.current, chunk.last = msg, msg.offset() or 0
    return end, outcome
