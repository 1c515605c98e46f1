"""The record path shared by every engine: decode, run processors, route, encode, hand over.

A :class:`Pipeline` is compiled once from an :class:`~streamkit.app.App`: a serde per topic
(schemas parsed once), processors grouped by input topic. Engines feed it raw records and
give it a sink for the encoded outputs; every failure goes to the failure handler.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from time import perf_counter
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
from streamkit.errors import ProcessingFailedError, SerializationError
from streamkit.failures.dead_letter import (
    REDRIVE_COUNT,
    REDRIVE_PROCESSOR,
    dead_letter_headers,
    dlq_topic,
    parked_topic,
)
from streamkit.failures.handler import FailurePolicy
from streamkit.processor import KEEP_KEY, Context, Emit, ProcessorSpec, route
from streamkit.runtime.failure import Action, Failure, FailureHandler, Stage
from streamkit.runtime.middleware import Middleware, MiddlewareChain, RecordInfo
from streamkit.settings import Settings
from streamkit.state.aggregate import AggregateSpec, changelog_topic
from streamkit.state.dedupe import dedupe_store
from streamkit.state.manager import StateManager
from streamkit.state.stores import Entry, encode_entry

__all__ = [
    "OutRecord",
    "Outcome",
    "Pipeline",
    "RetryOrigin",
    "Sink",
    "TopicSerdes",
    "make_serde",
]

RETRY_PREFIX = "__streamkit.retry."

Headers = Sequence[tuple[str, bytes | None]]
Sink = Callable[..., None]
"""Receives ``(topic, key, value, headers, timestamp[, partition])`` for each encoded
record; ``partition`` (a changelog record's) defaults to the partitioner's choice."""


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
    """What one record did: counts, and the failures the engine must act on.

    Attributes:
        emitted: output records handed to the sink.
        filtered: processors that returned nothing.
        done: processors that finished (their outputs are in the sink).
        retry: processors to retry on this record (blocking), with the delay in seconds.
        forward: (failure, retry topic, delay) for processors with retry topics.
        dead: failures whose record goes to the dead-letter topic.
        skipped: failures the handler chose to skip.
        deduplicated: processors skipped because the event id was seen.
        extra_headers: headers middleware adds to the record's outputs and dead letters.
    """

    emitted: int = 0
    filtered: int = 0
    done: list[str] = field(default_factory=list)
    retry: dict[str, float] = field(default_factory=dict)
    forward: list[tuple[Failure, str, float]] = field(default_factory=list)
    dead: list[Failure] = field(default_factory=list)
    skipped: int = 0
    deduplicated: int = 0
    extra_headers: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass(frozen=True)
class RetryOrigin:
    """Where a record read from a retry topic first came from, and what to do with it."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    processor: str
    attempt: int
    due_ms: int
    headers: list[tuple[str, bytes | None]]


OutRecord = tuple[str, bytes | None, bytes | None, list[tuple[str, bytes | None]]]
_ROUTED = (Emit, list, tuple)
"""Processor results that name their outputs or fan out (not a single value)."""

FastPath = Callable[[int, int, int, bytes | None, bytes, Callable[..., None]], "Outcome | None"]


class Pipeline:
    """Processors of one app, compiled for fast per-record execution."""

    def __init__(
        self,
        app: App,
        settings: Settings | None = None,
        failure_handler: FailureHandler | None = None,
        middleware: Sequence[Middleware] = (),
        *,
        state_dir: Path | None = None,
        memory_stores: bool = False,
    ) -> None:
        app.validate()
        self.app = app
        self.settings = settings or Settings.from_env()
        self.failure_handler: FailureHandler = failure_handler or default_failure_policy(app)
        self.chain = MiddlewareChain([*app.middleware, *middleware])
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
        self.specs = {spec.name: spec for spec in app.processors}
        self.fast_filtered = 0
        self.state: StateManager | None = None
        if app.store_specs():
            specs = app.store_specs()
            if memory_stores:
                specs = [replace(a, store_kind="memory") for a in specs]
            where = state_dir or self.settings.state_dir / "stores"
            self.state = StateManager(app.name, specs, where)
        self.aggregates_by_input: dict[str, list[AggregateSpec]] = {}
        for agg in app.aggregates:
            self.aggregates_by_input.setdefault(agg.input, []).append(agg)
        for topic in self.aggregates_by_input:
            self._wants_context.setdefault(topic, False)
        self.retry_topics = app.retry_topics()
        self._retry_topic_of = {
            (r.processor, r.index): (r.name, r.delay) for r in self.retry_topics.values()
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

    # -- the fast path ------------------------------------------------------------------
    def fast_path(self, topic: str) -> FastPath | None:
        """A tight per-record function for the common shape, or None for the general path.

        The common shape: one processor on the topic, returning one value (or None) for
        its single output with the input's key format; no context, aggregates, dedupe or
        middleware. The function returns None when the record is done (emitted or
        filtered) and an :class:`Outcome` when a failure needs the engine.
        """
        specs = self.by_input.get(topic, [])
        if len(specs) != 1 or topic in self.aggregates_by_input or self.chain.middlewares:
            return None
        spec = specs[0]
        if spec.takes_context or spec.dedupe is not None or spec.output is None:
            return None
        if self.app.topics[spec.output].key != self.app.topics[topic].key:
            return None
        decode = self.serdes[topic].value.decode
        encode = self.serdes[spec.output].value.encode
        fn, output, deliver = spec.fn, spec.output, self._deliver

        def run(  # noqa: PLR0911 - one exit per way a record can end
            partition: int,
            offset: int,
            timestamp: int,
            key: bytes | None,
            value: bytes,
            sink: Sink,
        ) -> Outcome | None:
            try:
                event = decode(value)
            except SerializationError as exc:
                outcome = Outcome()
                located = exc.at(topic, partition, offset)
                self._decide(
                    Failure(Stage.DECODE, topic, partition, offset, located), outcome, None
                )
                return outcome
            try:
                result = fn(event)
            except Exception as exc:  # noqa: BLE001 - user code; the handler decides
                outcome = Outcome()
                self._decide(
                    Failure(Stage.PROCESS, topic, partition, offset, exc, spec.name), outcome, spec
                )
                return outcome
            if result is None:
                self.fast_filtered += 1
                return None
            if type(result) is not dict and isinstance(result, _ROUTED):
                outcome = Outcome()
                try:
                    emits = route(spec, result)
                except Exception as exc:  # noqa: BLE001 - a routing mistake of the user
                    failure = Failure(Stage.PROCESS, topic, partition, offset, exc, spec.name)
                    self._decide(failure, outcome, spec)
                    return outcome
                deliver(
                    spec, emits, (topic, partition, offset, timestamp), key, None, sink, outcome
                )
                return outcome if outcome.dead or outcome.retry else None
            try:
                encoded = encode(result)
            except SerializationError as exc:
                outcome = Outcome()
                failure = Failure(
                    Stage.ENCODE, topic, partition, offset, exc.at(output), spec.name, output
                )
                self._decide(failure, outcome, spec)
                return outcome
            sink(output, key, encoded, None, timestamp)
            return None

        return run

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
        attempt: int = 1,
        only: frozenset[str] | None = None,
    ) -> Outcome:
        """Run the processors of ``topic`` (or just ``only``) on one record; sink outputs.

        A tombstone (``value`` None) is passed to no processor. Every failure goes to the
        failure handler; its decisions are collected in the :class:`Outcome` for the
        engine to carry out (a STOP decision raises
        :class:`~streamkit.errors.ProcessingFailedError`). A redriven record carrying
        ``__streamkit.redrive.processor`` runs only that processor.
        """
        if not self.chain.wants_records:
            return self._process(
                topic, partition, offset, timestamp, key, value, headers, sink, attempt, only, None
            )
        info = RecordInfo(topic, partition, offset, key, headers or (), self.app.group_id)
        with self.chain.record(info) as extra:
            return self._process(
                topic, partition, offset, timestamp, key, value, headers, sink, attempt, only,
                extra or None,
            )  # fmt: skip

    def _process(
        self,
        topic: str,
        partition: int,
        offset: int,
        timestamp: int,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None,
        sink: Sink,
        attempt: int,
        only: frozenset[str] | None,
        extra: list[tuple[str, bytes]] | None,
    ) -> Outcome:
        outcome = Outcome(extra_headers=extra or [])
        specs = self.by_input.get(topic, [])
        folds = self.aggregates_by_input.get(topic, [])
        if not specs and not folds:
            return outcome
        if headers:
            only = _redrive_target(headers) or only
        if value is None:
            outcome.filtered += len(specs)
            return outcome
        serdes = self.serdes[topic]
        try:
            event = serdes.value.decode(value)
            event_key = serdes.key.decode(key) if key is not None else None
        except SerializationError as exc:
            located = exc.at(topic, partition, offset)
            self._decide(Failure(Stage.DECODE, topic, partition, offset, located), outcome, None)
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
        where = (topic, partition, offset, timestamp)
        ids = {s.name: s.dedupe.event_id(event, headers) for s in specs if s.dedupe is not None}
        self._run(specs, event, ctx, only, attempt, where, key, event_key, sink, outcome, ids)
        if folds:
            self._fold(folds, event, event_key, only, attempt, where, sink, outcome)
        return outcome

    def _fold(
        self,
        folds: list[AggregateSpec],
        event: Any,
        event_key: Any,
        only: frozenset[str] | None,
        attempt: int,
        where: tuple[str, int, int, int],
        sink: Sink,
        outcome: Outcome,
    ) -> None:
        """Fold the event into each aggregate's state; failures go to the handler."""
        assert self.state is not None  # noqa: S101 - built whenever the app has aggregates
        topic, partition, offset, timestamp = where
        for agg in folds:
            if only is not None and agg.name not in only:
                continue
            state_key = agg.state_key(event, event_key)
            if state_key is None:
                outcome.filtered += 1
                continue
            encode = self.serdes[agg.output].value.encode if agg.output else None
            try:
                self.state.apply(agg, partition, offset, timestamp, state_key, event, sink, encode)
            except Exception as exc:  # noqa: BLE001 - the fold is user code
                failure = Failure(
                    Stage.PROCESS, topic, partition, offset, exc, agg.name, attempt=attempt
                )
                self._decide(failure, outcome, None)
                continue
            outcome.done.append(agg.name)
            outcome.emitted += 1

    def _run(
        self,
        specs: list[ProcessorSpec],
        event: Any,
        ctx: Context | None,
        only: frozenset[str] | None,
        attempt: int,
        where: tuple[str, int, int, int],
        key: bytes | None,
        event_key: Any,
        sink: Sink,
        outcome: Outcome,
        ids: dict[str, str | None],
    ) -> None:
        topic, partition, offset, _ = where
        timing = self.chain.wants_timing
        for spec in specs:
            if only is not None and spec.name not in only:
                continue
            event_id = ids.get(spec.name)
            if event_id is not None and self._seen(spec, partition, event_id):
                outcome.deduplicated += 1
                outcome.done.append(spec.name)
                continue
            started = perf_counter() if timing else 0.0
            try:
                if spec.takes_context:
                    assert ctx is not None  # noqa: S101 - built above when any spec takes it
                    ctx.processor = spec.name
                    result = spec.fn(event, ctx)
                else:
                    result = spec.fn(event)
                emits = route(spec, result)
            except Exception as exc:  # noqa: BLE001 - user code; the handler decides
                failure = Failure(
                    Stage.PROCESS, topic, partition, offset, exc, spec.name, attempt=attempt
                )
                self._decide(failure, outcome, spec)
                if timing:
                    self.chain.processed(spec.name, perf_counter() - started, "failed")
                continue
            ended = self._deliver(spec, emits, where, key, event_key, sink, outcome)
            if event_id is not None and ended != "failed":
                self._remember(spec, where, event_id, sink)
            if timing:
                self.chain.processed(spec.name, perf_counter() - started, ended)

    def _seen(self, spec: ProcessorSpec, partition: int, event_id: str) -> bool:
        assert self.state is not None  # noqa: S101 - built whenever a processor dedupes
        entry = self.state.store(dedupe_store(spec.name), partition).get(event_id)
        window = spec.dedupe.seconds if spec.dedupe is not None else 0
        return entry is not None and entry.timestamp + window * 1000 >= time.time() * 1000

    def _remember(
        self, spec: ProcessorSpec, where: tuple[str, int, int, int], event_id: str, sink: Sink
    ) -> None:
        assert self.state is not None  # noqa: S101 - built whenever a processor dedupes
        _, partition, offset, timestamp = where
        seen = int(time.time() * 1000)
        entry = Entry(True, offset, seen)
        store = dedupe_store(spec.name)
        self.state.put(store, partition, event_id, entry)
        changelog = changelog_topic(self.app.name, store)
        sink(changelog, event_id.encode(), encode_entry(entry), None, timestamp, partition)

    def _deliver(
        self,
        spec: ProcessorSpec,
        emits: list[Emit],
        where: tuple[str, int, int, int],
        key: bytes | None,
        event_key: Any,
        sink: Sink,
        outcome: Outcome,
    ) -> str:
        """Encode and sink one processor's emits; say how it ended."""
        topic, partition, offset, timestamp = where
        if not emits:
            outcome.filtered += 1
            outcome.done.append(spec.name)
            return "filtered"
        encoded = self._encode(spec, emits, topic, partition, offset, key, event_key, outcome)
        if encoded is None:
            return "failed"
        extra = outcome.extra_headers
        for out_topic, out_key, out_value, headers in encoded:
            sink(
                out_topic,
                out_key,
                out_value,
                [*(headers or ()), *extra] if extra else headers,
                timestamp,
            )
        outcome.emitted += len(encoded)
        outcome.done.append(spec.name)
        return "emitted"

    def decide(self, failure: Failure, outcome: Outcome) -> None:
        """Ask the failure handler about ``failure`` and record the decision in ``outcome``."""
        self._decide(failure, outcome, self.specs.get(failure.processor))

    def _decide(self, failure: Failure, outcome: Outcome, spec: ProcessorSpec | None) -> None:
        decision = self.failure_handler.on_failure(failure)
        self.chain.failure(failure, decision)
        action = decision.action
        if action is Action.STOP:
            raise ProcessingFailedError(failure)
        if action is Action.SKIP:
            outcome.skipped += 1
        elif action is Action.RETRY and spec is not None and spec.retry_topics:
            target = self._retry_topic_of.get((spec.name, failure.attempt - 1))
            if target is None:
                outcome.dead.append(failure)
            else:
                outcome.forward.append((failure, target[0], target[1]))
        elif action is Action.RETRY and failure.processor:
            outcome.retry[failure.processor] = decision.delay
        else:
            outcome.dead.append(failure)

    def _encode(
        self,
        spec: ProcessorSpec,
        emits: list[Emit],
        topic: str,
        partition: int,
        offset: int,
        raw_key: bytes | None,
        event_key: Any,
        outcome: Outcome,
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
                failure = Failure(
                    Stage.ENCODE,
                    topic,
                    partition,
                    offset,
                    exc.at(emit.topic),
                    spec.name,
                    emit.topic,
                )
                self._decide(failure, outcome, spec)
                return None
            out.append((emit.topic, out_key, out_value, _headers(emit.headers)))
        return out

    # -- failed records -----------------------------------------------------------------
    def dead_letter_record(
        self,
        failure: Failure,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None,
        source_timestamp: int,
        trace: Sequence[tuple[str, bytes]] = (),
    ) -> OutRecord:
        """The DLQ (or, after too many redrives, the parked) record for ``failure``;
        ``trace`` are the headers middleware added to the record's outputs."""
        original = [(k, v) for k, v in (headers or ()) if not k.startswith(RETRY_PREFIX)]
        redrives = 0
        for name, raw in original:
            if name == REDRIVE_COUNT and raw:
                redrives = int(raw.decode() or 0)
        make = parked_topic if redrives >= self.app.max_redrives else dlq_topic
        extra = dead_letter_headers(
            failure, app=self.app.name, group=self.app.group_id, source_timestamp=source_timestamp
        )
        return make(self.app.name, failure.topic), key, value, [*original, *extra, *trace]

    def retry_record(
        self,
        failure: Failure,
        retry_topic: str,
        delay: float,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None,
        source_timestamp: int,
        trace: Sequence[tuple[str, bytes]] = (),
    ) -> OutRecord:
        """The record that carries ``failure``'s input to ``retry_topic``, due after ``delay``."""
        original = [(k, v) for k, v in (headers or ()) if not k.startswith(RETRY_PREFIX)]
        due = int(time.time() * 1000 + delay * 1000)
        error = f"{type(failure.error).__name__}: {failure.error}"[:500]
        extra = [
            (RETRY_PREFIX + "processor", failure.processor),
            (RETRY_PREFIX + "attempt", str(failure.attempt + 1)),
            (RETRY_PREFIX + "due", str(due)),
            (RETRY_PREFIX + "topic", failure.topic),
            (RETRY_PREFIX + "partition", str(failure.partition)),
            (RETRY_PREFIX + "offset", str(failure.offset)),
            (RETRY_PREFIX + "timestamp", str(source_timestamp)),
            (RETRY_PREFIX + "error", error),
        ]
        retry_headers = [(k, v.encode()) for k, v in extra]
        return retry_topic, key, value, [*original, *retry_headers, *trace]

    def retry_origin(self, headers: Headers | None) -> RetryOrigin | None:
        """For a record of a retry topic: where it came from and when it is due."""
        if not headers:
            return None
        found = {
            k[len(RETRY_PREFIX) :]: (v or b"").decode()
            for k, v in headers
            if k.startswith(RETRY_PREFIX)
        }
        try:
            return RetryOrigin(
                topic=found["topic"],
                partition=int(found["partition"]),
                offset=int(found["offset"]),
                timestamp=int(found["timestamp"]),
                processor=found["processor"],
                attempt=int(found["attempt"]),
                due_ms=int(found["due"]),
                headers=[(k, v) for k, v in headers if not k.startswith(RETRY_PREFIX)],
            )
        except (KeyError, ValueError):
            return None


def default_failure_policy(app: App) -> FailurePolicy:
    """Each processor's retry policy (retry topics set the attempts), DLQs as the app says."""
    policies = {agg.name: app.retry for agg in app.aggregates}
    for spec in app.processors:
        policy = app.retry_policy(spec.name)
        if spec.retry_topics:
            policy = replace(policy, attempts=len(spec.retry_topics) + 1)
        policies[spec.name] = policy
    return FailurePolicy(policies, app.retry, dead_letters=app.dead_letters)


def _redrive_target(headers: Headers) -> frozenset[str] | None:
    for name, raw in headers:
        if name == REDRIVE_PROCESSOR and raw:
            return frozenset({raw.decode("utf-8", "replace")})
    return None


def _headers(headers: Any) -> list[tuple[str, bytes]] | None:
    if not headers:
        return None
    items = headers.items() if hasattr(headers, "items") else headers
    return [(k, v.encode() if isinstance(v, str) else v) for k, v in items]
