"""Replaying topics.

**Reset** moves an app's committed offsets (``to_datetime``, ``by_duration``,
``to_offset``, ``to_earliest``, ``to_latest``, ``shift_by``): plan first (current → new,
records to reprocess per partition), apply only when asked, and never while the group has
active members unless forced.

**Shadow** runs the app's processors over a bounded range of the input under a throwaway
consumer group that commits nothing, with every output redirected (a suffix, one named
topic, or discarded), and stops at the end of the range. The live group is untouched.
Outputs keep the input's key and timestamp, so replaying a range twice writes the same
bytes.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from streamkit.app import App
from streamkit.errors import ConfigError, KafkaOperationError
from streamkit.failures.policy import parse_duration
from streamkit.ops.admin import TopicSpec, create_topics, describe_topics
from streamkit.ops.console import message_headers
from streamkit.ops.offsets import (
    TP,
    alter_committed,
    committed_offsets,
    group_members,
    offsets_for,
    partitions_of,
)
from streamkit.runtime.pipeline import Pipeline
from streamkit.settings import Settings

__all__ = [
    "Bound",
    "Redirect",
    "ResetLine",
    "ResetTarget",
    "ShadowSummary",
    "apply_reset",
    "parse_bound",
    "parse_datetime",
    "plan_reset",
    "shadow_replay",
]


def parse_datetime(text: str) -> dt.datetime:
    """An ISO 8601 time with a timezone; without one it is refused (no guessing)."""
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(f"{text!r} is not an ISO 8601 time (e.g. 2026-11-26T10:00:00Z)") from exc
    if when.tzinfo is None:
        raise ConfigError(
            f"{text!r} has no timezone: add one (2026-11-26T10:00:00Z or +01:00); "
            "streamkit does not guess"
        )
    return when


@dataclass(frozen=True)
class ResetTarget:
    """Where to move the offsets."""

    kind: Literal["datetime", "duration", "offset", "earliest", "latest", "shift"]
    value: float = 0


@dataclass(frozen=True)
class ResetLine:
    """One partition of a reset plan."""

    topic: str
    partition: int
    current: int | None
    new: int
    end: int

    @property
    def to_reprocess(self) -> int:
        """Records the group will process again (negative: records it will skip)."""
        current = self.end if self.current is None else self.current
        return current - self.new


def _selected(
    app: App, admin: AdminClient, topics: list[str] | None, partitions: list[int] | None
) -> list[TP]:
    inputs = [p.input for p in app.processors]
    chosen = list(dict.fromkeys(topics or inputs))
    for topic in chosen:
        if topic not in inputs:
            raise ConfigError(f"app {app.name} does not consume topic {topic}")
    found = partitions_of(admin, chosen)
    if partitions is not None:
        known = {p for _, p in found}
        unknown = sorted(set(partitions) - known)
        if unknown:
            raise ConfigError(f"partitions {unknown} do not exist (known: {sorted(known)})")
        found = [(t, p) for t, p in found if p in partitions]
    return found


def plan_reset(
    app: App,
    admin: AdminClient,
    target: ResetTarget,
    *,
    topics: list[str] | None = None,
    partitions: list[int] | None = None,
) -> list[ResetLine]:
    """The reset plan for the app's group (nothing changes)."""
    parts = _selected(app, admin, topics, partitions)
    current = committed_offsets(admin, app.group_id, parts)
    state, members = group_members(admin, app.group_id)
    if all(v is None for v in current.values()) and not members and state in {"DEAD", "UNKNOWN"}:
        raise ConfigError(
            f"group {app.group_id} is unknown to the cluster (no members, no committed offsets)"
        )
    earliest = offsets_for(admin, parts, "earliest")
    latest = offsets_for(admin, parts, "latest")
    if target.kind in {"datetime", "duration"}:
        when = target.value if target.kind == "datetime" else time.time() - target.value
        new = offsets_for(admin, parts, "timestamp", int(when * 1000))
    elif target.kind == "earliest":
        new = dict(earliest)
    elif target.kind == "latest":
        new = dict(latest)
    elif target.kind == "offset":
        new = dict.fromkeys(parts, int(target.value))
    else:
        new = {}
        for tp in parts:
            base = current[tp]
            new[tp] = (latest[tp] if base is None else base) + int(target.value)
    return [
        ResetLine(t, p, current[(t, p)], min(max(new[(t, p)], earliest[(t, p)]), latest[(t, p)]),
                  latest[(t, p)])
        for t, p in parts
    ]  # fmt: skip


def apply_reset(admin: AdminClient, app: App, plan: list[ResetLine], *, force: bool) -> None:
    """Commit the plan's new offsets; refuses while the group has members unless ``force``."""
    _, members = group_members(admin, app.group_id)
    if members and not force:
        raise ConfigError(
            f"group {app.group_id} has active members ({', '.join(members)}); stop them "
            "first, or pass --force"
        )
    alter_committed(admin, app.group_id, {(x.topic, x.partition): x.new for x in plan})


@dataclass(frozen=True)
class Bound:
    """One end of a replay range: an offset (every partition) or a time."""

    kind: Literal["offset", "time"]
    value: float


def parse_bound(text: str) -> Bound:
    """``1200`` (an offset), ``2026-11-26T10:00:00Z`` (a time) or ``15m`` (that long ago)."""
    text = text.strip()
    if text.isdigit():
        return Bound("offset", int(text))
    try:
        return Bound("time", time.time() - parse_duration(text))
    except ConfigError:
        return Bound("time", parse_datetime(text).timestamp())


@dataclass(frozen=True)
class Redirect:
    """Where shadow outputs go: ``suffix`` appended, one ``topic``, or nowhere (discard)."""

    suffix: str | None = None
    topic: str | None = None

    def target(self, topic: str) -> str | None:
        """The topic that receives what was meant for ``topic`` (None: discarded)."""
        if self.topic is not None:
            return self.topic
        if self.suffix is not None:
            return f"{topic}{self.suffix}"
        return None


@dataclass
class ShadowSummary:
    """What a shadow replay read and wrote."""

    read: int = 0
    emitted: dict[str, int] = field(default_factory=dict)
    dead_lettered: int = 0
    filtered: int = 0
    seconds: float = 0.0
    created: list[str] = field(default_factory=list)


def _bound_offsets(admin: AdminClient, parts: list[TP], bound: Bound) -> dict[TP, int]:
    if bound.kind == "offset":
        return dict.fromkeys(parts, int(bound.value))
    return offsets_for(admin, parts, "timestamp", int(bound.value * 1000))


def _ensure_targets(
    admin: AdminClient, app: App, redirect: Redirect, summary: ShadowSummary
) -> None:
    outputs = {o for p in app.processors for o in p.outputs}
    failure = {t.name for t in app.failure_topics()}
    wanted: dict[str, int] = {}
    for name in outputs | failure:
        target = redirect.target(name)
        if target is None:
            continue
        declared = app.all_topics().get(name)
        partitions = declared.partitions if declared is not None else 1
        wanted[target] = max(wanted.get(target, 1), partitions)
    live = set(app.all_topics())
    clash = sorted(t for t in wanted if t in live)
    if clash:
        raise ConfigError(f"a shadow replay must not write to the app's own topics: {clash}")
    existing = describe_topics(admin)
    missing = [TopicSpec(t, n) for t, n in wanted.items() if t not in existing]
    created = create_topics(admin, missing)
    summary.created = sorted(t for t, outcome in created.items() if outcome == "created")


def _ranges(
    admin: AdminClient, parts: list[TP], start: Bound, until: Bound | None
) -> dict[TP, tuple[int, int]]:
    """Per partition, ``[first, end)`` offsets of the range (empty partitions left out)."""
    latest = offsets_for(admin, parts, "latest")
    earliest = offsets_for(admin, parts, "earliest")

    def clamp(offsets: dict[TP, int]) -> dict[TP, int]:
        return {tp: max(earliest[tp], min(o, latest[tp])) for tp, o in offsets.items()}

    begin = clamp(_bound_offsets(admin, parts, start))
    end = latest if until is None else clamp(_bound_offsets(admin, parts, until))
    return {tp: (begin[tp], end[tp]) for tp in parts if end[tp] > begin[tp]}


def shadow_replay(
    app: App,
    settings: Settings,
    start: Bound,
    until: Bound | None,
    redirect: Redirect,
    *,
    topics: list[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ShadowSummary:
    """Run the app's processors over ``[start, until)`` of its inputs; see the module doc."""
    config = settings.client_config()
    admin = AdminClient(config)
    todo = _ranges(admin, _selected(app, admin, topics, None), start, until)
    total = sum(e - b for b, e in todo.values())
    if total == 0:
        raise ConfigError("nothing to replay: the range holds no record in any partition")
    summary = ShadowSummary()
    _ensure_targets(admin, app, redirect, summary)
    pipeline = Pipeline(app, settings)
    producer = Producer({**config, "enable.idempotence": True, "acks": "all", "linger.ms": 20})
    errors: list[str] = []

    def delivered(err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            errors.append(f"{msg.topic()}: {err.str()}")

    def sink(topic: str, key: bytes | None, value: bytes | None, headers: Any, ts: int) -> None:
        summary.emitted[topic] = summary.emitted.get(topic, 0) + 1
        target = redirect.target(topic)
        if target is None:
            return
        kwargs: dict[str, Any] = {"on_delivery": delivered}
        if headers:
            kwargs["headers"] = headers
        if ts > 0:
            kwargs["timestamp"] = ts
        while True:
            try:
                producer.produce(target, value, key, **kwargs)
                return
            except BufferError:
                producer.poll(0.1)

    consumer = Consumer(
        {**config, "group.id": f"{app.group_id}-shadow-{uuid.uuid4().hex[:8]}",
         "enable.auto.commit": False, "enable.auto.offset.store": False,
         "isolation.level": "read_committed"}
    )  # fmt: skip
    began = time.monotonic()
    try:
        _consume_range(consumer, todo, total, pipeline, sink, summary, producer, progress)
    finally:
        consumer.close()
    if producer.flush(60) or errors:
        raise KafkaOperationError(f"shadow outputs not all written: {errors[:1] or 'timeout'}")
    summary.seconds = time.monotonic() - began
    return summary


def _consume_range(
    consumer: Consumer,
    todo: dict[TP, tuple[int, int]],
    total: int,
    pipeline: Pipeline,
    sink: Callable[..., None],
    summary: ShadowSummary,
    producer: Producer,
    progress: Callable[[int, int], None] | None,
) -> None:
    consumer.assign([TopicPartition(t, p, b) for (t, p), (b, _) in todo.items()])
    remaining = dict(todo)
    while remaining:
        for msg in consumer.consume(500, timeout=1.0):
            if msg.error() is not None:
                continue
            tp = (msg.topic() or "", msg.partition() or 0)
            window = remaining.get(tp)
            offset = msg.offset() or 0
            if window is None or offset >= window[1]:
                continue
            _replay_record(pipeline, msg, tp, offset, sink, summary)
            if offset + 1 >= window[1]:
                del remaining[tp]
                consumer.incremental_unassign([TopicPartition(*tp)])
        producer.poll(0)
        if progress is not None:
            progress(summary.read, total)


def _replay_record(
    pipeline: Pipeline,
    msg: Any,
    tp: TP,
    offset: int,
    sink: Callable[..., None],
    summary: ShadowSummary,
) -> None:
    """One record through the processors; retries inline, dead letters through the sink."""
    headers = message_headers(msg)
    timestamp = msg.timestamp()[1]
    attempt, only = 1, None
    while True:
        outcome = pipeline.process(
            tp[0], tp[1], offset, timestamp, msg.key(), msg.value(), headers, sink,
            attempt=attempt, only=only,
        )  # fmt: skip
        summary.filtered += outcome.filtered
        failed = list(outcome.dead) + [f for f, _, _ in outcome.forward]
        for failure in failed:
            record = pipeline.dead_letter_record(
                failure, msg.key(), msg.value(), headers, timestamp
            )
            summary.dead_lettered += 1
            sink(record[0], record[1], record[2], record[3], timestamp)
        if not outcome.retry:
            break
        time.sleep(max(outcome.retry.values()))
        attempt, only = attempt + 1, frozenset(outcome.retry)
    summary.read += 1


def summary_lines(summary: ShadowSummary, redirect: Redirect) -> list[str]:
    """The summary as lines for a terminal."""
    lines = [f"read {summary.read} records in {summary.seconds:.1f}s"]
    for topic, count in sorted(summary.emitted.items()):
        target = redirect.target(topic)
        lines.append(f"  {topic}: {count} → {target or 'discarded'}")
    lines.append(f"filtered {summary.filtered}, dead-lettered {summary.dead_lettered}")
    if summary.created:
        lines.append(f"created {', '.join(summary.created)}")
    return lines


def committed_snapshot(app: App, config: Mapping[str, Any]) -> dict[TP, int | None]:
    """The live group's committed offsets on its inputs (to show they did not move)."""
    admin = AdminClient(dict(config))
    return committed_offsets(admin, app.group_id, _selected(app, admin, None, None))
