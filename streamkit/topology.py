"""Every name and role an app derives from its declarations, in one place.

From an :class:`~streamkit.app.App` come its dead-letter, parked, retry and changelog
topics, its stores and the consumer groups of its tools. Nothing else in streamkit builds
these names, and a topic's role is looked up here, never recovered by parsing its name.

=========================================  ============================================
``<app>-<input>-dlq``                      dead letters of records of ``input``
``<app>-<input>-parked``                   dead letters that failed again after redrives
``<app>-<processor>-retry-<n>``            the n-th delay topic of a processor
``<app>-<store>-changelog``                a store's compacted changelog
``<app>-<store>-late``                     records too late for a window store's windows
                                           (or a join's partners)
``<processor>-dedupe``                     the store of a processor's (or aggregate's)
                                           dedupe ids
``<processor>-timers``                     the store of a processor's (or aggregate's) timers
``<window>-sources``                       how far a repartitioned window folded each source
``<group>-dlq-redrive``                    the redrive cursor of ``streamkit dlq``
``<group>-restore``                        the consumer that restores stores
``<app>-<name>-repartition``               an input re-keyed (see :mod:`streamkit.patterns`)
=========================================  ============================================
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from streamkit.app import App, Topic
from streamkit.processor import ProcessorSpec
from streamkit.state.aggregate import AggregateSpec
from streamkit.state.stores import StoreSpec
from streamkit.topic import CLUSTER_DEFAULT

__all__ = ["RetryTopic", "Role", "Topology"]


class Role(StrEnum):
    """What a topic is to an app."""

    INPUT = "input"
    OUTPUT = "output"
    PROJECTION = "projection"
    DEAD_LETTERS = "dead letters"
    PARKED = "parked"
    RETRY = "retry"
    REPARTITION = "repartition"
    LATE = "late"
    CHANGELOG = "changelog"
    DECLARED = "declared"


_ORDER = tuple(Role)


@dataclass(frozen=True)
class RetryTopic:
    """A delay topic of a processor's non-blocking retries.

    Attributes:
        name: the topic.
        processor: the processor whose failures it carries.
        source: the processor's input topic.
        index: 0 for the first delay topic.
        delay: seconds a record waits in it.
        partitions: partitioned like the source.
    """

    name: str
    processor: str
    source: str
    index: int
    delay: float
    partitions: int


class Topology:
    """The derived names and roles of one app (see the module docstring)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.name = app.name
        self.group_id = app.group_id
        self._retry: dict[str, RetryTopic] = {}
        for spec in app.processors:
            partitions = self._partitions(spec.input)
            for index, delay in enumerate(spec.retry_topics):
                name = f"{app.name}-{spec.name}-retry-{index + 1}"
                self._retry[name] = RetryTopic(
                    name, spec.name, spec.input, index, delay, partitions
                )
        self._stores = [
            StoreSpec(a.store, a.input, self.changelog(a.store), a.store_kind, a.ttl)
            for a in app.aggregates
        ]
        self._stores += [
            StoreSpec(w.store, w.input, self.changelog(w.store), w.store_kind) for w in app.windows
        ]
        self._stores += [
            StoreSpec(store, w.input, self.changelog(store))
            for w in app.windows
            if w.input in app.repartitioned
            for store in [self.sources_store(w.name)]
        ]
        timed_specs: list[ProcessorSpec | AggregateSpec] = [*app.processors, *app.aggregates]
        for timed in timed_specs:
            if timed.on_timer is not None:
                store = self.timer_store(timed.name)
                self._stores.append(StoreSpec(store, timed.input, self.changelog(store)))
        deduped = [(p.name, p.input, p.dedupe) for p in app.processors]
        deduped += [(a.name, a.input, a.dedupe) for a in app.aggregates]
        for owner, source, dedupe in deduped:
            if dedupe is not None:
                store = self.dedupe_store(owner)
                self._stores.append(
                    StoreSpec(store, source, self.changelog(store), "memory", dedupe.seconds)
                )

    # -- names ----------------------------------------------------------------------------
    def dlq(self, input_topic: str) -> str:
        """The dead-letter topic of records of ``input_topic``."""
        return f"{self.name}-{input_topic}-dlq"

    def parked(self, input_topic: str) -> str:
        """Where records of ``input_topic`` that failed again after redrives are parked."""
        return f"{self.name}-{input_topic}-parked"

    def changelog(self, store: str) -> str:
        """The compacted changelog of ``store`` (Kafka Streams' naming)."""
        return f"{self.name}-{store}-changelog"

    def late(self, store: str) -> str:
        """Where the records too late for the windows of ``store`` go."""
        return f"{self.name}-{store}-late"

    @staticmethod
    def timer_store(processor: str) -> str:
        """The store of ``processor``'s (or an aggregate's) timers."""
        return f"{processor}-timers"

    @staticmethod
    def sources_store(window: str) -> str:
        """The store of how far a repartitioned window folded each source partition, per
        key (so that records its router wrote twice are folded once)."""
        return f"{window}-sources"

    @staticmethod
    def dedupe_store(owner: str) -> str:
        """The store of the dedupe ids of processor or aggregate ``owner``."""
        return f"{owner}-dedupe"

    @property
    def redrive_group(self) -> str:
        """The consumer group that remembers how far each DLQ was redriven."""
        return f"{self.group_id}-dlq-redrive"

    @property
    def restore_group(self) -> str:
        """The group id of the consumer that restores stores (it never joins)."""
        return f"{self.group_id}-restore"

    # -- what the app reads and keeps -----------------------------------------------------
    def inputs(self) -> list[str]:
        """The topics the app's processors and aggregates read, in declaration order."""
        found = [p.input for p in self.app.processors]
        found += [a.input for a in self.app.aggregates]
        found += [w.input for w in self.app.windows]
        return list(dict.fromkeys(found))

    def consumed(self) -> list[str]:
        """Every topic the app's workers subscribe to: inputs and retry topics."""
        return [*self.inputs(), *self._retry]

    def outputs(self) -> list[str]:
        """Every topic the app writes results to: outputs and projections."""
        found = [o for p in self.app.processors for o in p.outputs]
        found += [a.output for a in self.app.aggregates if a.output]
        found += [o for a in self.app.aggregates for o in a.outputs]
        found += [w.output for w in self.app.windows if w.output]
        return list(dict.fromkeys(found))

    def retry_topics(self) -> dict[str, RetryTopic]:
        """The non-blocking retry topics of the app's processors, by name."""
        return dict(self._retry)

    def retry_topic(self, processor: str, index: int) -> RetryTopic | None:
        """The ``index``-th (0-based) delay topic of ``processor``, if it has one."""
        for topic in self._retry.values():
            if topic.processor == processor and topic.index == index:
                return topic
        return None

    def stores(self) -> list[StoreSpec]:
        """Every store: the aggregates', then the dedupe stores."""
        return list(self._stores)

    def stores_of(self, topic: str) -> list[StoreSpec]:
        """The stores partitioned like ``topic``."""
        return [s for s in self._stores if s.source == topic]

    # -- topics ---------------------------------------------------------------------------
    def failure_topics(self) -> list[Topic]:
        """Dead-letter, parked and retry topics, partitioned like their inputs."""
        topics: list[Topic] = []
        if self.app.dead_letters:
            for name in self.inputs():
                partitions, replicas = self._partitions(name), self._replicas(name)
                topics.append(Topic(self.dlq(name), "bytes", "bytes", partitions, replicas))
                topics.append(Topic(self.parked(name), "bytes", "bytes", partitions, replicas))
        topics += [
            Topic(r.name, "bytes", "bytes", r.partitions, self._replicas(r.source))
            for r in self._retry.values()
        ]
        topics += [
            Topic(
                self.late(w.store),
                "bytes",
                "bytes",
                self._partitions(w.input),
                self._replicas(w.input),
            )
            for w in self.app.windows
        ]
        topics += [
            Topic(
                self.late(a.store),
                "bytes",
                "bytes",
                self._partitions(a.input),
                self._replicas(a.input),
            )
            for a in self.app.aggregates
            if a.late
        ]
        return topics

    def state_topics(self) -> list[Topic]:
        """The changelog topics of the stores: compacted, partitioned like their source."""
        compact = {"cleanup.policy": "compact"}
        return [
            Topic(
                s.changelog,
                "bytes",
                "string",
                self._partitions(s.source),
                self._replicas(s.source),
                compact,
            )
            for s in self._stores
        ]

    def topics(self) -> dict[str, Topic]:
        """Declared topics plus the failure and state topics derived from them."""
        derived = [*self.failure_topics(), *self.state_topics()]
        return {**self.app.topics, **{t.name: t for t in derived}}

    def roles(self) -> dict[str, tuple[Role, ...]]:  # noqa: PLR0912 - one branch per kind
        """Every topic of :meth:`topics` with its roles (a topic may have several)."""
        found: dict[str, set[Role]] = {name: set() for name in self.topics()}
        for name in self.inputs():
            found[name].add(Role.INPUT)
        for spec in self.app.processors:
            for out in spec.outputs:
                found[out].add(Role.OUTPUT)
        for agg in self.app.aggregates:
            if agg.output:
                found[agg.output].update((Role.OUTPUT, Role.PROJECTION))
            for out in agg.outputs:  # a workflow's emits
                found[out].add(Role.OUTPUT)
            if agg.late:  # a join's
                found[self.late(agg.store)].add(Role.LATE)
        for window in self.app.windows:
            found[self.late(window.store)].add(Role.LATE)
            if window.output:
                found[window.output].add(Role.OUTPUT)
        if self.app.dead_letters:
            for name in self.inputs():
                found[self.dlq(name)].add(Role.DEAD_LETTERS)
                found[self.parked(name)].add(Role.PARKED)
        for name in self._retry:
            found[name].add(Role.RETRY)
        for name in self.app.repartitioned:
            found[name].add(Role.REPARTITION)
        for store in self._stores:
            found[store.changelog].add(Role.CHANGELOG)
        return {
            name: tuple(r for r in _ORDER if r in roles) or (Role.DECLARED,)
            for name, roles in found.items()
        }

    def role(self, topic: str) -> tuple[Role, ...]:
        """The roles of ``topic`` (empty: not a topic of this app)."""
        return self.roles().get(topic, ())

    def _partitions(self, topic: str) -> int:
        declared = self.app.topics.get(topic)
        return declared.partitions if declared is not None else 1

    def _replicas(self, topic: str) -> int:
        declared = self.app.topics.get(topic)
        return declared.replication_factor if declared is not None else CLUSTER_DEFAULT
