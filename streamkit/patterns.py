"""The correlation patterns of an App: tables, fan-in (gather), stream-stream joins, and
the repartitioning (re-keying) they and aggregates and windows need.

Each pattern is declared in terms of what the runtime already runs: a gather or a join is
an aggregate (with durable timers) over an internal repartition topic, fed by one small
router processor per input topic; an aggregate or window keyed by a field its input is not
keyed by reads such a topic too. So they share every guarantee of processors and
aggregates (at least once or exactly once, dead letters, restore), and the routers' and
aggregates' names show up in metrics like any other.

=========================================  ============================================
``<app>-<name>-repartition``               the input(s) of ``name`` keyed by its key
``<name>-from-<topic>``                    the router of ``topic`` into it
=========================================  ============================================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from streamkit.errors import ConfigError
from streamkit.failures.policy import RetryPolicy
from streamkit.processor import Context, Emit, ProcessorSpec
from streamkit.settings import parse_duration
from streamkit.state._saga import Saga
from streamkit.state.aggregate import SOURCE_HEADER, AggregateSpec
from streamkit.state.gather import GatherSpec
from streamkit.state.join import JoinSpec
from streamkit.state.stores import state_key, validate_kind
from streamkit.state.tables import TableSpec
from streamkit.state.workflow import Workflow
from streamkit.topic import CLUSTER_DEFAULT, NAME, Topic

__all__ = ["Patterns", "duration_ms", "repartition_topic", "topic_name"]

F = TypeVar("F", bound=Callable[..., Any])
_INTERNAL_HEADERS = "__streamkit."


def duration_ms(duration: str | float | None) -> int:
    """Milliseconds of ``"1m"`` or a number of seconds (None: 0)."""
    if duration is None:
        return 0
    seconds = duration if isinstance(duration, int | float) else parse_duration(duration)
    return int(seconds * 1000)


def topic_name(topic: str | Topic) -> str:
    """The name of a topic given by name or declaration."""
    return topic.name if isinstance(topic, Topic) else topic


def repartition_topic(app: str, owner: str) -> str:
    """The internal topic that feeds ``owner`` its input(s) keyed by its key."""
    return f"{app}-{owner}-repartition"


class Patterns:
    """Tables, gathers, joins and repartitioning: the part of :class:`~streamkit.App`
    that declares them (a mixin; the App holds the declarations)."""

    name: str
    _topics: dict[str, Topic]
    _processors: dict[str, ProcessorSpec]
    _aggregates: dict[str, AggregateSpec]
    _tables: dict[str, TableSpec]
    _gathers: dict[str, GatherSpec]
    _joins: dict[str, JoinSpec]
    _repartitioned: dict[str, str]
    _workflows: dict[str, Workflow]

    def _claim(self, label: str, store: str | None = None) -> None:
        raise NotImplementedError

    # -- tables ---------------------------------------------------------------------------
    def table(
        self,
        name: str,
        *,
        topic: str | Topic,
        key: str | Callable[[Any], Any] | None = None,
        global_: bool = False,
    ) -> TableSpec:
        """Declare a table: the compacted ``topic`` materialised per worker (see
        :mod:`streamkit.state.tables`). ``key`` is the row field holding the table key (or
        a function of the row; default: the record key). ``global_=True`` gives every
        worker every partition; otherwise the table must be co-partitioned with the
        streams that read it. Pass the returned table (or ``table.left(on=...)``,
        ``table.inner(on=...)``) in a processor's ``tables=``."""
        if name in self._tables:
            raise ConfigError(f"app {self.name} already has a table named {name}")
        spec = TableSpec(name, topic_name(topic), key, global_)
        self._tables[name] = spec
        return spec

    def _validate_tables(self) -> None:
        """Every table a processor reads is declared, on a declared topic, and (unless
        global) partitioned like the processor's input."""
        for spec in self._processors.values():
            for lookup in spec.tables:
                table = lookup.table
                if self._tables.get(table.name) is not table:
                    raise ConfigError(
                        f"processor {spec.name} reads table {table.name}, which "
                        f"app {self.name} does not declare"
                    )
                source = self._topics.get(table.topic)
                if source is None:
                    raise ConfigError(
                        f"table {table.name} reads topic {table.topic}, which app "
                        f"{self.name} does not declare"
                    )
                stream = self._topics[spec.input]
                if not table.global_ and table.key is not None and source.keyed_by != table.key:
                    how = f"field {table.key!r}" if isinstance(table.key, str) else "a function"
                    raise ConfigError(
                        f"table {table.name} is keyed by {how} but its topic {table.topic} is "
                        "not declared keyed_by it: a partitioned table's rows must be keyed "
                        "like the streams that read it; declare the topic keyed_by that field "
                        "or the table global_=True"
                    )
                if not table.global_ and source.partitions != stream.partitions:
                    raise ConfigError(
                        f"table {table.name} is not co-partitioned with processor "
                        f"{spec.name}: {table.topic} has {source.partitions} partitions, "
                        f"{spec.input} {stream.partitions}; give them the same count or "
                        "declare the table global_=True"
                    )

    # -- fan-in ---------------------------------------------------------------------------
    def gather(
        self,
        inputs: Sequence[str | Topic],
        correlate: str | Callable[[Any], Any],
        *,
        output: str | Topic,
        timeout: str | float,
        complete_when: int | Callable[[Any], bool] | None = None,
        on_timeout: str = "partial",
        part: str | Callable[[Any], Any] | None = None,
        retain: str | float = "1h",
        store: str | None = None,
        store_kind: str = "memory",
        name: str | None = None,
    ) -> Callable[[F], F]:
        """Decorate ``fn(parts, complete) -> result``, called once per group of parts that
        share a correlation id (see :mod:`streamkit.state.gather`): when
        ``complete_when`` parts are in (default: one from each input), or, with
        ``complete=False``, when ``timeout`` passes first (``on_timeout="partial"``; with
        ``"dead_letter"`` the incomplete group goes to the dead-letter topic instead).
        The result goes to ``output`` keyed by the correlation id."""

        def register(fn: F) -> F:
            label = str(name or getattr(fn, "__name__", "gather"))
            topics = tuple(topic_name(t) for t in inputs)
            spec = GatherSpec(
                name=label,
                fn=fn,
                inputs=topics,
                correlate=correlate,
                complete_when=len(topics) if complete_when is None else complete_when,
                timeout_s=duration_ms(timeout) / 1000,
                on_timeout=on_timeout,
                part=part,
                retain_s=duration_ms(retain) / 1000,
            )
            self._correlator(label, spec, store or label, store_kind, topic_name(output))
            self._gathers[label] = spec
            return fn

        return register

    def join(
        self,
        left: str | Topic,
        right: str | Topic,
        on: str | Callable[[Any], Any],
        *,
        within: str | float,
        output: str | Topic,
        how: str = "inner",
        grace: str | float | None = None,
        store: str | None = None,
        store_kind: str = "memory",
        name: str | None = None,
    ) -> Callable[[F], F]:
        """Decorate ``fn(left, right) -> result``, a windowed stream-stream join (see
        :mod:`streamkit.state.join`): called for each pair of records of ``left`` and
        ``right`` with the same ``on`` and event times at most ``within`` apart (``how=
        "left"`` or ``"outer"`` also for records that found no partner, with None). The
        result goes to ``output`` keyed by the join key. ``grace`` (default 0) is how far
        behind the stream time a record may come and still meet its partners; a later one
        goes to the late topic ``<app>-<store>-late``."""

        def register(fn: F) -> F:
            label = str(name or getattr(fn, "__name__", "join"))
            spec = JoinSpec(
                label,
                fn,
                topic_name(left),
                topic_name(right),
                on,
                duration_ms(within),
                how,
                duration_ms(grace),
            )
            self._correlator(label, spec, store or label, store_kind, topic_name(output))
            self._joins[label] = spec
            return fn

        return register

    def _correlator(
        self,
        label: str,
        spec: GatherSpec | JoinSpec,
        store: str,
        store_kind: str,
        output: str,
    ) -> None:
        """A gather or join: its inputs routed into one repartition topic (JSON envelopes
        keyed by the correlation id), folded there by an aggregate with timers."""
        self._claim(label, store)
        target = self._repartition(
            label,
            spec.inputs,
            lambda event, _key: spec.correlation(event),
            spec.envelope,
            value="json",
        )
        self._aggregates[label] = AggregateSpec(
            name=label,
            fold=spec.fold,
            input=target,
            store=store,
            key=None,
            output=output,
            ttl=None,
            store_kind=validate_kind(store_kind),
            on_timer=spec.on_timer,
            takes_context=True,
            timer_takes_context=True,
            project=spec.project,
            late=isinstance(spec, JoinSpec),
        )

    # -- workflows ------------------------------------------------------------------------
    def workflow(
        self,
        name: str,
        *,
        start: str | Topic,
        id: str | Callable[[Any], Any],
        events: Sequence[str | Topic] | Mapping[str | Topic, str | Callable[[Any], Any]] = (),
        output: str | Topic | None = None,
        outputs: Sequence[str | Topic] = (),
        retries: int | RetryPolicy | None = None,
        history: int = 50,
        retain: str | float = "7d",
        buffer_ttl: str | float = "1h",
        buffer_max: int = 100,
        store: str | None = None,
        store_kind: str = "memory",
    ) -> Workflow:
        """Declare a durable workflow (a saga; see :mod:`streamkit.state.workflow`): each
        record of ``start`` starts the instance named by its ``id`` field (or function),
        once; steps are declared with the returned workflow's ``step`` and ``wait``
        decorators. ``events`` are the topics its waits wait for (each with the field
        holding the instance id, when not ``id``); steps ``ctx.emit`` to ``outputs``; an
        instance's result goes to ``output`` when it ends. Its state and history are in
        store ``store`` (default: its name), with a compacted changelog."""
        if name in self._workflows:
            raise ConfigError(f"app {self.name} already has a workflow named {name}")
        routes = events.items() if isinstance(events, Mapping) else ((e, id) for e in events)
        flow = Workflow(
            name=name,
            start=topic_name(start),
            id=id,
            events={topic_name(topic): key for topic, key in routes},
            output=None if output is None else topic_name(output),
            outputs=tuple(topic_name(t) for t in outputs),
            history=history,
            retain_s=duration_ms(retain) / 1000,
            buffer_ttl_s=duration_ms(buffer_ttl) / 1000,
            buffer_max=buffer_max,
            retry=RetryPolicy.of(retries, RetryPolicy()),
        )
        self._claim(name, store or name)
        target = self._repartition(
            name,
            flow.inputs,
            lambda _event, _key: None,
            lambda topic, event: {"input": topic, "part": event},
            "json",
            key_for=flow.instance_id,
        )
        saga = Saga(flow)
        self._aggregates[name] = AggregateSpec(
            name=name,
            fold=saga.fold,
            input=target,
            store=store or name,
            key=None,
            output=flow.output,
            ttl=None,
            store_kind=validate_kind(store_kind),
            on_timer=saga.on_timer,
            takes_context=True,
            timer_takes_context=True,
            project=saga.project,
            outputs=flow.outputs,
            report=saga.report,
        )
        self._workflows[name] = flow
        return flow

    @property
    def workflows(self) -> list[Workflow]:
        """The declared workflows, in declaration order."""
        return list(self._workflows.values())

    # -- re-keying ------------------------------------------------------------------------
    def _keyed_input(self, owner: str, input: str, key: str | Callable[[Any], Any] | None) -> str:
        """The topic an aggregate or window keyed by ``key`` reads: ``input`` itself when
        its records are keyed by it, else a repartition topic of ``input`` by ``key``."""
        if key is None:
            return input
        declared = self._topics.get(input)
        if declared is None:
            raise ConfigError(
                f"{owner} is keyed by {key if isinstance(key, str) else 'a function'}, so "
                f"its input {input} must be declared first (app.topic({input!r}, ...)): "
                "it is repartitioned unless declared keyed_by that field"
            )
        if isinstance(key, str) and declared.keyed_by == key:
            return input
        value = declared.value

        def keyed(event: Any, record_key: Any) -> str | None:
            return state_key(key, event, record_key)

        return self._repartition(owner, (input,), keyed, lambda _topic, event: event, value)

    def _repartition(
        self,
        owner: str,
        inputs: Sequence[str],
        key_of: Callable[[Any, Any], str | None],
        envelope: Callable[[str, Any], Any],
        value: str,
        key_for: Callable[[str, Any], str | None] | None = None,
    ) -> str:
        """Declare ``<app>-<owner>-repartition`` and a router from each of ``inputs`` (keyed
        by ``key_of(event, record_key)``, or ``key_for(input, event)`` when given)."""
        target = repartition_topic(self.name, owner)
        if not NAME.match(target):
            raise ConfigError(
                f"{owner!r} reads a repartition topic, named after it, so its name "
                "must be of [A-Za-z0-9._-]: give it one with name="
            )
        declared = [self._topics[t] for t in inputs if t in self._topics]
        partitions = max((t.partitions for t in declared), default=1)
        replicas = max((t.replication_factor for t in declared), default=CLUSTER_DEFAULT)
        self._topics[target] = Topic(target, value, "string", partitions, replicas)
        for source in inputs:
            keyed = key_of if key_for is None else _keyed_by(key_for, source)
            router = _router(target, keyed, envelope)
            label = f"{owner}-from-{source}"
            self._claim(label)
            self._processors[label] = ProcessorSpec.build(
                router, input=source, output=None, outputs=[target], name=label
            )
        self._repartitioned[target] = owner
        return target


def _router(
    target: str, key_of: Callable[[Any, Any], str | None], envelope: Callable[[str, Any], Any]
) -> Callable[[Any, Context], Emit | None]:
    """The processor that forwards a record to ``target`` keyed by ``key_of`` (its
    timestamp kept by the runtime, its own headers kept but streamkit's), with its source
    in a header: records it forwards twice (at least once) are folded once."""

    def route(event: Any, ctx: Context) -> Emit | None:
        key = key_of(event, ctx.key)
        if key is None:
            return None
        headers = [(k, v or b"") for k, v in ctx.headers if not k.startswith(_INTERNAL_HEADERS)]
        headers.append((SOURCE_HEADER, f"{ctx.topic}/{ctx.partition}/{ctx.offset}".encode()))
        return Emit(target, envelope(ctx.topic, event), key=key, headers=headers)

    return route


def _keyed_by(
    key_for: Callable[[str, Any], str | None], source: str
) -> Callable[[Any, Any], str | None]:
    """The key function of records of ``source``."""
    return lambda event, _record_key: key_for(source, event)
