"""Replaying topics.

**Reset** moves an app's committed offsets (``to_datetime``, ``by_duration``,
``to_offset``, ``to_earliest``, ``to_latest``, ``shift_by``): plan first (current → new,
records to reprocess per partition), apply only when asked, and never while the group has
active members unless forced. The app's own repartition topics go to their end whatever
the target (as Kafka Streams' reset tool does with internal topics): the inputs reprocessed
route their records into them again, so what they hold already must not be read twice.

**Shadow** runs the app's whole topology over a bounded range of the inputs (see
:mod:`streamkit.engines.shadow`; repartition hops in memory, timers on the replayed
records' time) under a throwaway consumer that commits nothing,
with every output, projection and dead letter redirected (a suffix, one named topic, or
discarded), and stops at the end of the range. The live group is untouched. Outputs keep
the input's key and timestamp, so replaying a range twice writes the same bytes.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from confluent_kafka.admin import AdminClient

from streamkit.app import App
from streamkit.engines.kafka.offsets import (
    alter_committed,
    committed_offsets,
    group_members,
    offsets_for,
    partitions_of,
)
from streamkit.engines.shadow import ShadowReplay, ShadowSummary
from streamkit.errors import ConfigError
from streamkit.ops.admin import TopicSpec, create_topics, describe_topics
from streamkit.records import TP
from streamkit.settings import Settings, parse_duration
from streamkit.topology import Role, Topology

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
    inputs = Topology(app).inputs()
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
    internal = {tp for tp in parts if tp[0] in app.repartitioned}
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
    new.update({tp: latest[tp] for tp in internal})  # read again from the inputs instead
    return [
        ResetLine(
            t,
            p,
            current[(t, p)],
            min(max(new[(t, p)], earliest[(t, p)]), latest[(t, p)]),
            latest[(t, p)],
        )
        for t, p in parts
    ]


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


def _bound_offsets(admin: AdminClient, parts: list[TP], bound: Bound) -> dict[TP, int]:
    if bound.kind == "offset":
        return dict.fromkeys(parts, int(bound.value))
    return offsets_for(admin, parts, "timestamp", int(bound.value * 1000))


def _ensure_targets(
    admin: AdminClient, app: App, redirect: Redirect, summary: ShadowSummary
) -> None:
    topology = Topology(app)
    written = (Role.OUTPUT, Role.PROJECTION, Role.DEAD_LETTERS, Role.PARKED)
    topics = topology.topics()
    wanted: dict[str, int] = {}
    for name, roles in topology.roles().items():
        target = redirect.target(name)
        if target is None or name in app.repartitioned or not any(r in roles for r in written):
            continue  # (a repartition topic's hop is replayed in memory)
        wanted[target] = max(wanted.get(target, 1), topics[name].partitions)
    clash = sorted(t for t in wanted if t in topics)
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
    admin = AdminClient(settings.client_config(for_client="admin"))
    internal = sorted(set(topics or ()) & set(app.repartitioned))
    if internal:
        raise ConfigError(
            f"{', '.join(internal)}: an internal repartition topic is replayed from the "
            "topics that feed it, not read itself"
        )
    parts = [tp for tp in _selected(app, admin, topics, None) if tp[0] not in app.repartitioned]
    todo = _ranges(admin, parts, start, until)
    if not todo:
        raise ConfigError("nothing to replay: the range holds no record in any partition")
    replay = ShadowReplay(app, settings, todo, redirect.target)
    _ensure_targets(admin, app, redirect, replay.summary)
    return replay.run(progress)


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
