"""The fast path: a tight per-record function for the most common processor shape.

The shape: one processor on the topic, returning one value (or None) for its single
output with the input's key format; no context, aggregates, dedupe, patterns, concurrency
or middleware. Its function returns None when the record is done (emitted or filtered) and an
:class:`~streamkit.runtime.outcome.Outcome` when something needs settling.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from streamkit.errors import SerializationError
from streamkit.failures.failure import Failure, Stage
from streamkit.processor import Emit, ProcessorSpec, route
from streamkit.runtime.outcome import Outcome, Sink

if TYPE_CHECKING:
    from streamkit.runtime.pipeline import Pipeline

__all__ = ["FastPath", "compile_fast_path"]

FastPath = Callable[[int, int, int, bytes | None, bytes, Sink], Outcome | None]
"""``(partition, offset, timestamp, key, value, sink)``: None when the record is done."""

_ROUTED = (Emit, list, tuple)
"""Processor results that name their outputs or fan out (not a single value)."""


def compile_fast_path(pipeline: Pipeline, spec: ProcessorSpec, topic: str) -> FastPath | None:
    """The fast path of ``spec`` on ``topic``, or None when it does not have the shape."""
    if spec.takes_context or spec.dedupe is not None or spec.output is None or spec.concurrent:
        return None
    if spec.where is not None or spec.where_headers is not None:
        return None
    topics = pipeline.app.topics
    if topics[spec.output].key != topics[topic].key:
        return None
    decode = pipeline.serdes[topic].value.decode
    encode = pipeline.serdes[spec.output].value.encode
    fn, output, decide, deliver = spec.fn, spec.output, pipeline.decide, pipeline.deliver

    def failed(failure: Failure) -> Outcome:
        outcome = Outcome()
        decide(failure, outcome)
        return outcome

    def run(  # noqa: PLR0911 - one exit per way a record can end
        partition: int, offset: int, timestamp: int, key: bytes | None, value: bytes, sink: Sink
    ) -> Outcome | None:
        try:
            event = decode(value)
        except SerializationError as exc:
            located = exc.at(topic, partition, offset)
            return failed(Failure(Stage.DECODE, topic, partition, offset, located))
        try:
            result = fn(event)
        except Exception as exc:  # noqa: BLE001 - user code; the handler decides
            return failed(Failure(Stage.PROCESS, topic, partition, offset, exc, spec.name))
        if result is None:
            pipeline.fast_filtered += 1
            return None
        if type(result) is not dict and isinstance(result, _ROUTED):
            try:
                emits = route(spec, result)
            except Exception as exc:  # noqa: BLE001 - a routing mistake of the user
                return failed(Failure(Stage.PROCESS, topic, partition, offset, exc, spec.name))
            outcome = Outcome()
            deliver(spec, emits, (topic, partition, offset, timestamp), key, None, sink, outcome)
            if outcome.dead or outcome.retry or outcome.produce_errors:
                return outcome
            return None
        try:
            encoded = encode(result)
        except SerializationError as exc:
            return failed(
                Failure(Stage.ENCODE, topic, partition, offset, exc.at(output), spec.name, output)
            )
        error = sink(output, key, encoded, None, timestamp)
        if error is None:
            return None
        outcome = Outcome()
        outcome.produce_errors.append(error)
        return outcome

    return run
