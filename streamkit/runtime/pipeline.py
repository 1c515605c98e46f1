"""The record path shared by every engine: decode, run processors, route, encode, hand over.

A :class:`Pipeline` is compiled once from an :class:`~streamkit.app.App`: a serde per topic
(schemas parsed once), processors grouped by input topic. Engines feed it raw records and
give it a sink for the encoded outputs; every failure goes to the failure handler.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from streamkit.app import App, Topic
from streamkit.contracts.repository import SchemaRepository
from streamkit.contracts.serde import (
    AvroSerde,
    BytesSerde,
    ConfluentAvroSerde,
    JsonSerde,
    Serde,
    StringSerde,
    registry_client,
)
from streamkit.errors import SerializationError
from streamkit.processor import KEEP_KEY, Context, Emit, ProcessorSpec, route
from streamkit.runtime.failure import Failure, FailureHandler, Stage, StopOnFailure
from streamkit.settings import Settings

__all__ = ["Outcome", "Pipeline", "Sink", "TopicSerdes", "make_serde"]

Headers = Sequence[tuple[str, bytes | None]]
Sink = Callable[[str, bytes | None, bytes | None, list[tuple[str, bytes]] | None, int], None]
"""Receives (topic, key, value, headers, timestamp) for each encoded output record."""


def make_serde(
    fmt: str,
    repository: Callable[[], SchemaRepository],
    *,
    registry: Callable[[], Any] | None = None,
    subject: str = "",
) -> Serde:
    """The serde for a topic format: json, string, bytes, or an Avro contract name."""
    if fmt == "json":
        return JsonSerde()
    if fmt == "string":
        return StringSerde()
    if fmt == "bytes":
        return BytesSerde()
    if registry is not None:
        return ConfluentAvroSerde(registry(), repository(), fmt, subject)
    return AvroSerde(repository(), fmt)


@dataclass(frozen=True)
class TopicSerdes:
    """Key and value serdes of one topic."""

    key: Serde
    value: Serde


@dataclass
class Outcome:
    """Counts of what one record did (engines aggregate them for summaries and tests)."""

    emitted: int = 0
    filtered: int = 0


class Pipeline:
    """Processors of one app, compiled for fast per-record execution."""

    def __init__(
        self,
        app: App,
        settings: Settings | None = None,
        failure_handler: FailureHandler | None = None,
    ) -> None:
        app.validate()
        self.app = app
        self.settings = settings or Settings.from_env()
        self.failure_handler: FailureHandler = failure_handler or StopOnFailure()
        self._repository: SchemaRepository | None = None
        self._registry: Any = None
        self.serdes: dict[str, TopicSerdes] = {
            name: self._serdes(topic) for name, topic in app.topics.items()
        }
        self.by_input: dict[str, list[ProcessorSpec]] = {}
        for spec in app.processors:
            self.by_input.setdefault(spec.input, []).append(spec)
        self._wants_context = {
            topic: any(s.takes_context for s in specs) for topic, specs in self.by_input.items()
        }

    # -- construction -------------------------------------------------------------------
    def repository(self) -> SchemaRepository:
        """The app's contracts, loaded on first use."""
        if self._repository is None:
            self._repository = SchemaRepository.from_directory(self.app.schemas_dir())
        return self._repository

    def _registry_client(self) -> Any:
        if self._registry is None:
            self._registry = registry_client(self.settings.schema_registry_url)
        return self._registry

    def _serdes(self, topic: Topic) -> TopicSerdes:
        registry = self._registry_client if self.settings.schema_registry_url else None
        return TopicSerdes(
            key=make_serde(
                topic.key, self.repository, registry=registry, subject=f"{topic.name}-key"
            ),
            value=make_serde(
                topic.value, self.repository, registry=registry, subject=f"{topic.name}-value"
            ),
        )

    # -- the record path ----------------------------------------------------------------
    def process(
        self,
        topic: str,
        partition: int,
        offset: int,
        timestamp: int,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None,
        sink: Sink,
    ) -> Outcome:
        """Run every processor of ``topic`` on one record and sink what they emit.

        A tombstone (``value`` None) is passed to no processor. Failures go to the
        failure handler; when it returns, the failed processor's outputs are skipped.
        """
        outcome = Outcome()
        specs = self.by_input.get(topic)
        if not specs:
            return outcome
        if value is None:
            outcome.filtered += len(specs)
            return outcome
        serdes = self.serdes[topic]
        try:
            event = serdes.value.decode(value)
            event_key = serdes.key.decode(key) if key is not None else None
        except SerializationError as exc:
            self.failure_handler.on_failure(
                Failure(Stage.DECODE, topic, partition, offset, exc.at(topic, partition, offset))
            )
            return outcome
        ctx = None
        if self._wants_context[topic]:
            ctx = Context(
                topic=topic,
                partition=partition,
                offset=offset,
                timestamp=timestamp,
                key=event_key,
                headers=list(headers or ()),
                processor="",
            )
        for spec in specs:
            try:
                if spec.takes_context:
                    assert ctx is not None  # noqa: S101 - built above when any spec takes it
                    ctx.processor = spec.name
                    result = spec.fn(event, ctx)
                else:
                    result = spec.fn(event)
                emits = route(spec, result)
            except Exception as exc:  # noqa: BLE001 - user code; the handler decides
                self.failure_handler.on_failure(
                    Failure(Stage.PROCESS, topic, partition, offset, exc, spec.name)
                )
                continue
            if not emits:
                outcome.filtered += 1
                continue
            encoded = self._encode(spec, emits, topic, partition, offset, key, event_key)
            if encoded is None:
                continue
            for out_topic, out_key, out_value, out_headers in encoded:
                sink(out_topic, out_key, out_value, out_headers, timestamp)
            outcome.emitted += len(encoded)
        return outcome

    def _encode(
        self,
        spec: ProcessorSpec,
        emits: list[Emit],
        topic: str,
        partition: int,
        offset: int,
        raw_key: bytes | None,
        event_key: Any,
    ) -> list[tuple[str, bytes | None, bytes, list[tuple[str, bytes]] | None]] | None:
        """Encode all of a processor's emits, or none of them (then None)."""
        out = []
        in_key_format = self.app.topics[topic].key
        for emit in emits:
            serdes = self.serdes[emit.topic]
            try:
                if emit.key is KEEP_KEY:
                    same = self.app.topics[emit.topic].key == in_key_format
                    out_key = raw_key if same or raw_key is None else serdes.key.encode(event_key)
                else:
                    out_key = None if emit.key is None else serdes.key.encode(emit.key)
                out_value = serdes.value.encode(emit.value)
            except SerializationError as exc:
                self.failure_handler.on_failure(
                    Failure(
                        Stage.ENCODE,
                        topic,
                        partition,
                        offset,
                        exc.at(emit.topic),
                        spec.name,
                        emit.topic,
                    )
                )
                return None
            out.append((emit.topic, out_key, out_value, _headers(emit.headers)))
        return out


def _headers(headers: Any) -> list[tuple[str, bytes]] | None:
    if not headers:
        return None
    items = headers.items() if hasattr(headers, "items") else headers
    return [(k, v.encode() if isinstance(v, str) else v) for k, v in items]
