"""Encoding and sinking what a processor emitted: all of its records, or none of them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from streamkit.contracts.changes import Change
from streamkit.errors import SerializationError
from streamkit.failures.failure import Failure, Stage
from streamkit.processor import KEEP_KEY, Emit, ProcessorSpec
from streamkit.runtime._stateful import Where
from streamkit.runtime.outcome import Outcome, Sink
from streamkit.runtime.serdes import TopicSerdes

__all__ = ["Emitter"]

Encoded = tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]] | None]
"""An emit as it is written: topic, key, value, headers."""


class Emitter:
    """Encodes and sinks processors' emits with the app's serdes and key formats (by
    topic); an encoding failure goes to ``decide`` (the pipeline's failure handling)."""

    __slots__ = ("decide", "formats", "serdes")

    def __init__(
        self,
        formats: Mapping[str, str],
        serdes: Mapping[str, TopicSerdes],
        decide: Callable[[Failure, Outcome], None],
    ) -> None:
        self.formats = formats
        self.serdes = serdes
        self.decide = decide

    def deliver(
        self,
        spec: ProcessorSpec,
        emits: list[Emit],
        where: Where,
        key: bytes | None,
        event_key: Any,
        sink: Sink,
        outcome: Outcome,
    ) -> str:
        """Encode and sink one processor's emits for the record at ``where`` (its key
        ``key``, decoded ``event_key``); say how it ended (emitted, filtered or failed)."""
        timestamp = where[3]
        if not emits:
            outcome.filtered += 1
            outcome.done.append(spec.name)
            return "filtered"
        encoded = self._encode(spec, emits, where, key, event_key, outcome)
        if encoded is None:
            return "failed"
        extra = outcome.extra_headers
        for out_topic, out_key, out_value, headers in encoded:
            error = sink(
                out_topic,
                out_key,
                out_value,
                [*(headers or ()), *extra] if extra else headers,
                timestamp,
            )
            if error is not None:
                outcome.produce_errors.append(error)
        outcome.emitted += len(encoded)
        outcome.done.append(spec.name)
        return "emitted"

    def _encode(
        self,
        spec: ProcessorSpec,
        emits: list[Emit],
        where: Where,
        raw_key: bytes | None,
        event_key: Any,
        outcome: Outcome,
    ) -> list[Encoded] | None:
        """Encode all of a processor's emits, or none of them (then None); an emit of None
        (or of a change that is a tombstone) is a tombstone."""
        topic, partition, offset, _ = where
        out = []
        formats = self.formats
        in_key_format = formats[topic]
        for emit in emits:
            serdes = self.serdes[emit.topic]
            try:
                if emit.key is KEEP_KEY:
                    same = formats[emit.topic] == in_key_format
                    out_key = raw_key if same or raw_key is None else serdes.key.encode(event_key)
                else:
                    out_key = None if emit.key is None else serdes.key.encode(emit.key)
                tombstone = emit.value is None or (
                    isinstance(emit.value, Change) and emit.value.is_tombstone
                )
                out_value = None if tombstone else serdes.value.encode(emit.value)
            except SerializationError as exc:
                failure = Failure(
                    Stage.ENCODE,
                    topic,
                    partition,
                    offset,
                    exc.at(emit.topic),
                    spec.name,
                    emit.topic,
                )
                self.decide(failure, outcome)
                return None
            out.append((emit.topic, out_key, out_value, emit.header_bytes()))
        return out
