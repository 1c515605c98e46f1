"""The App: the processors, topics and contracts of one service (one consumer group)."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from streamkit.errors import ConfigError
from streamkit.failures.policy import RetryPolicy
from streamkit.patterns import Patterns, duration_ms, topic_name
from streamkit.processor import Middleware, ProcessorSpec, positional
from streamkit.state.aggregate import AggregateSpec
from streamkit.state.dedupe import Dedupe
from streamkit.state.gather import GatherSpec
from streamkit.state.join import JoinSpec
from streamkit.state.stores import validate_kind
from streamkit.state.tables import TableLookup, TableSpec
from streamkit.state.windows import WindowSpec
from streamkit.state.workflow import Workflow
from streamkit.topic import CLUSTER_DEFAULT, NAME, Topic

__all__ = ["App", "Topic", "load_app"]

F = TypeVar("F", bound=Callable[..., Any])


class App(Patterns):
    """A streamkit application: ``App("orders")`` runs as consumer group ``orders``.

    The app holds declarations only; every name derived from them (dead-letter, retry
    and changelog topics, stores, groups) is in :class:`streamkit.topology.Topology`.

    Args:
        name: the app's name; the consumer group id unless ``group_id`` is given.
        group_id: override the consumer group id.
        schemas: the directory of ``.avsc`` contracts (default: ``$STREAMKIT_SCHEMAS_DIR``,
            else ``./schemas``), read the first time a contract is needed.
        retry: the retry policy of processors that do not set their own (default: no
            retries).
        dead_letters: send records that fail for good to ``<app>-<input>-dlq`` (default);
            when False a failure stops the worker instead.
        max_redrives: a record that fails again after this many redrives is parked in
            ``<app>-<input>-parked`` instead of going back to the DLQ.
        middleware: :class:`~streamkit.Middleware` around every record.
        guarantee: ``at_least_once`` (default) or ``exactly_once``: outputs, changelog
            writes, dead letters and input offsets in one Kafka transaction per batch,
            ``read_committed`` consumers, zombies fenced.
    """

    def __init__(
        self,
        name: str,
        *,
        group_id: str | None = None,
        schemas: str | Path | None = None,
        retry: RetryPolicy | None = None,
        dead_letters: bool = True,
        max_redrives: int = 3,
        middleware: Sequence[Middleware] = (),
        guarantee: str = "at_least_once",
    ) -> None:
        if not name or not NAME.match(name):
            raise ConfigError(f"app name {name!r} must be 1-249 of [A-Za-z0-9._-]")
        self.name = name
        self.group_id = group_id or name
        self._schemas = Path(schemas) if schemas is not None else None
        self._topics: dict[str, Topic] = {}
        self._processors: dict[str, ProcessorSpec] = {}
        self._aggregates: dict[str, AggregateSpec] = {}
        self._windows: dict[str, WindowSpec] = {}
        self._tables: dict[str, TableSpec] = {}
        self._gathers: dict[str, GatherSpec] = {}
        self._joins: dict[str, JoinSpec] = {}
        self._repartitioned: dict[str, str] = {}
        self._workflows: dict[str, Workflow] = {}
        self.retry = retry or RetryPolicy()
        self.dead_letters = dead_letters
        if max_redrives < 1:
            raise ConfigError(f"max_redrives must be >= 1, not {max_redrives}")
        self.max_redrives = max_redrives
        self.middleware: list[Middleware] = list(middleware)
        if guarantee not in {"at_least_once", "exactly_once"}:
            raise ConfigError(f"guarantee {guarantee!r}: expected at_least_once or exactly_once")
        self.guarantee = guarantee

    # -- declarations -------------------------------------------------------------------
    def topic(
        self,
        name: str,
        *,
        value: str = "json",
        key: str = "string",
        partitions: int = 1,
        replication_factor: int = CLUSTER_DEFAULT,
        config: Mapping[str, str] | None = None,
        keyed_by: str | None = None,
    ) -> Topic:
        """Declare a topic with its key/value formats and partition count; ``keyed_by``
        names the value field its records are keyed by (see :class:`Topic`)."""
        if not NAME.match(name) or name in {".", ".."}:
            raise ConfigError(f"topic name {name!r} is not a valid Kafka topic name")
        if partitions < 1 or (replication_factor < 1 and replication_factor != CLUSTER_DEFAULT):
            raise ConfigError(f"topic {name}: partitions and replication_factor must be >= 1")
        declared = Topic(
            name, value, key, partitions, replication_factor, dict(config or {}), keyed_by
        )
        existing = self._topics.get(name)
        if existing is not None and existing != declared:
            raise ConfigError(f"topic {name} is declared twice, differently")
        self._topics[name] = declared
        return declared

    def processor(
        self,
        input: str | Topic,
        output: str | Topic | None = None,
        *,
        outputs: Sequence[str | Topic] = (),
        name: str | None = None,
        retries: int | RetryPolicy | None = None,
        retry_topics: Sequence[str] = (),
        dedupe: Dedupe | None = None,
        on_timer: Callable[..., Any] | None = None,
        concurrency: int | None = None,
        ordering: str = "key",
        timeout: str | float | None = None,
        where: Mapping[str, Any] | None = None,
        where_headers: Mapping[str, Any] | None = None,
        tables: Sequence[TableSpec | TableLookup] = (),
        queue: bool = False,
    ) -> Callable[[F], F]:
        """Decorate a function ``(event) -> result`` or ``(event, ctx) -> result``.

        ``input`` is the topic it consumes; a returned value goes to ``output``; an
        :class:`~streamkit.processor.Emit` may go to any of ``outputs`` (fan-out).
        ``retries`` is a number of retries (with the app's backoff) or a
        :class:`~streamkit.failures.RetryPolicy`; retries block the record's partition,
        keeping per-partition order. ``retry_topics=["1s", "10s"]`` retries through
        delay topics instead, trading per-key order for throughput.
        ``dedupe=Dedupe(field="event_id", window="1h")`` runs it once per event id.
        ``on_timer=fn`` (``(timer) -> result`` or ``(timer, ctx) -> result``) is called
        when a timer the processor set with ``ctx.timers.schedule(...)`` fires; timers are
        durable (kept in ``<app>-<processor>-timers-changelog``). ``concurrency=N`` (or an
        ``async def``, 100 by default) runs N records at once, in order per key
        (``ordering="key"``, or ``"partition"``, ``"unordered"``); ``timeout="5s"`` fails a
        call that takes longer (see the README's "I/O-bound processors"). ``where=`` and
        ``where_headers=`` (EventBridge event patterns, see :mod:`streamkit.runtime.where`)
        pass it only the records that match, headers checked before decoding.
        ``tables=[CUSTOMERS, ...]`` (see :meth:`table`) passes each table, or with
        ``CUSTOMERS.left(on="customer_id")`` the event's row, as one more argument after
        the event: ``(event, customers)`` or ``(event, customers, ctx)``.
        ``queue=True`` consumes through a Kafka share group instead (workers past the
        partition count, each record acknowledged on its own, dead-lettered after
        ``retries + 1`` deliveries; no per-key order): see :mod:`streamkit.runtime.queues`.
        The function itself is returned unchanged, so it stays testable as is.
        """

        def register(fn: F) -> F:
            spec = ProcessorSpec.build(
                fn,
                input=topic_name(input),
                name=name,
                output=topic_name(output) if output is not None else None,
                outputs=[topic_name(o) for o in outputs],
                retries=retries,
                retry_topics=retry_topics,
                dedupe=dedupe,
                on_timer=on_timer,
                concurrency=concurrency,
                ordering=ordering,
                timeout=timeout,
                where=where,
                where_headers=where_headers,
                tables=[t if isinstance(t, TableLookup) else TableLookup(t) for t in tables],
                queue=queue,
            )
            self._claim(spec.name)
            self._processors[spec.name] = spec
            return fn

        return register

    def aggregate(
        self,
        input: str | Topic,
        store: str,
        *,
        key: str | Callable[[Any], Any] | None = None,
        output: str | Topic | None = None,
        ttl: float | None = None,
        store_kind: str = "memory",
        name: str | None = None,
        dedupe: Dedupe | None = None,
        on_timer: Callable[..., Any] | None = None,
    ) -> Callable[[F], F]:
        """Decorate a fold ``(state | None, event) -> state | None`` (None deletes), or
        ``(state, event, ctx)`` (a :class:`~streamkit.processor.Context`).

        State lives per key in ``store`` (``memory`` or ``rocksdb``) and in the compacted
        changelog ``<app>-<store>-changelog``; a worker restores a partition's store
        before processing it. ``key`` names the event field holding the state key (or is a
        function of the event; default: the record key). Unless the input is declared
        ``keyed_by`` that field, it is repartitioned by it first (through
        ``<app>-<name>-repartition``, see :mod:`streamkit.patterns`); when it is declared
        so, a record whose Kafka key is not its state key is dead-lettered. ``output``
        receives every new state (a projection). ``ttl`` (seconds) expires keys without
        updates. ``dedupe=Dedupe(...)`` folds an event once per event id. States must be
        JSON values. ``on_timer=fn`` (``(state, timer) -> state | None``, or with a third,
        ctx, parameter) gives a key's next state when a timer the fold set for it with
        ``ctx.timers.schedule(after=...)`` fires (an expiry, a reminder, a timeout); timers
        are durable (``<app>-<name>-timers-changelog``).
        """

        def register(fold: F) -> F:
            label = str(name or getattr(fold, "__name__", "aggregate"))
            count = positional(fold, f"aggregate {label}")
            if not 2 <= count <= 3:
                raise ConfigError(
                    f"aggregate {label} must take (state, event) or "
                    f"(state, event, ctx), not {count} parameters"
                )
            if on_timer is not None:
                if not 2 <= positional(on_timer, f"aggregate {label}") <= 3:
                    raise ConfigError(
                        f"aggregate {label}: on_timer must take (state, timer) "
                        "or (state, timer, ctx)"
                    )
                if count != 3:
                    raise ConfigError(
                        f"aggregate {label} has on_timer= but takes no ctx to set "
                        "timers with: make it (state, event, ctx) and call "
                        "ctx.timers.schedule(...)"
                    )
            self._claim(label, store)
            self._aggregates[label] = AggregateSpec(
                name=label,
                fold=fold,
                input=self._keyed_input(label, topic_name(input), key),
                store=store,
                key=key,
                output=topic_name(output) if output is not None else None,
                ttl=ttl,
                store_kind=validate_kind(store_kind),
                dedupe=dedupe,
                on_timer=on_timer,
                takes_context=count == 3,
                timer_takes_context=on_timer is not None and positional(on_timer) == 3,
            )
            return fold

        return register

    def window(
        self,
        input: str | Topic,
        store: str,
        *,
        key: str | Callable[[Any], Any] | None = None,
        size: str | float | None = None,
        hop: str | float | None = None,
        gap: str | float | None = None,
        sliding: bool = False,
        grace: str | float = 0,
        emit: str = "final",
        close_idle: str | float | None = None,
        output: str | Topic | None = None,
        form: str = "fold",
        timestamp: str | Callable[[Any], Any] | None = None,
        merge: Callable[[Any, Any], Any] | None = None,
        result: Callable[[str, int, int, Any], Any] | None = None,
        max_bytes: int = 900_000,
        store_kind: str = "memory",
        name: str | None = None,
    ) -> Callable[[F], F]:
        """Decorate the function of a windowed aggregation (see
        :mod:`streamkit.state.windows`): a fold ``(state | None, event) -> state``, with
        ``form="reduce"`` a ``(a, b) -> c``, with ``form="collect"`` what to keep of an
        event.

        ``size`` (tumbling; ``hop`` for hopping; ``sliding=True``) or ``gap`` (session),
        as ``"1m"`` or seconds. A window takes records up to ``grace`` after its end and
        then closes; ``close_idle`` also closes it after that much wall-clock time without
        a record. ``emit="final"`` gives one result per window when it closes, ``"update"``
        one per change; results go to ``output`` keyed by the window key, with the
        window's start and end. Event time is the record timestamp, or ``timestamp`` (a
        field or a function). Late records go to ``<app>-<store>-late``. An input not
        declared ``keyed_by`` the window ``key`` is repartitioned by it first.
        """

        def register(fn: F) -> F:
            label = str(name or getattr(fn, "__name__", "window"))
            self._claim(label, store)
            self._windows[label] = WindowSpec(
                name=label,
                fn=fn,
                input=self._keyed_input(label, topic_name(input), key),
                store=store,
                key=key,
                output=topic_name(output) if output is not None else None,
                size_ms=duration_ms(size),
                hop_ms=duration_ms(hop),
                gap_ms=duration_ms(gap),
                sliding=sliding,
                grace_ms=duration_ms(grace),
                emit=emit,
                close_idle_ms=None if close_idle is None else duration_ms(close_idle),
                form=form,
                timestamp=timestamp,
                merge=merge,
                result=result,
                max_bytes=max_bytes,
                store_kind=validate_kind(store_kind),
            )
            return fn

        return register

    def _claim(self, label: str, store: str | None = None) -> None:
        """Refuse a second processor of one name, or a second use of one store."""
        if label in self._processors or label in self._aggregates or label in self._windows:
            raise ConfigError(f"app {self.name} already has a processor named {label}")
        if store is None:
            return
        stores = [a.store for a in self._aggregates.values()]
        stores += [w.store for w in self._windows.values()]
        if store in stores:
            raise ConfigError(f"store {store} is used by another aggregate or window")
        if not NAME.match(store):
            raise ConfigError(f"store name {store!r} must be 1-249 of [A-Za-z0-9._-]")

    # -- what the runtime needs ---------------------------------------------------------
    @property
    def aggregates(self) -> list[AggregateSpec]:
        """The declared aggregates, in declaration order."""
        return list(self._aggregates.values())

    @property
    def windows(self) -> list[WindowSpec]:
        """The declared windows, in declaration order."""
        return list(self._windows.values())

    @property
    def processors(self) -> list[ProcessorSpec]:
        """The declared processors, in declaration order."""
        return list(self._processors.values())

    @property
    def topics(self) -> dict[str, Topic]:
        """The declared topics by name (repartition topics included)."""
        return dict(self._topics)

    @property
    def tables(self) -> list[TableSpec]:
        """The declared tables, in declaration order."""
        return list(self._tables.values())

    @property
    def repartitioned(self) -> dict[str, str]:
        """The internal repartition topics, with the aggregate, window, gather or join
        each one feeds."""
        return dict(self._repartitioned)

    def retry_policy(self, processor: str) -> RetryPolicy:
        """The retry policy of ``processor`` (its own, else the app's)."""
        spec = self._processors[processor]
        if spec.retry is None:
            return self.retry
        return spec.retry

    def schemas_dir(self) -> Path:
        """Where the contracts are: the ``schemas`` argument, else env, else ./schemas."""
        if self._schemas is not None:
            return self._schemas
        return Path(os.environ.get("STREAMKIT_SCHEMAS_DIR") or "schemas")

    def validate(self) -> None:
        """Fail fast on an incomplete app (no processors, topics used but not declared,
        tables and workflows declared wrong) and on what concurrent processors cannot
        promise."""
        if not self._processors and not self._aggregates and not self._windows:
            raise ConfigError(f"app {self.name} declares no processors")
        used = [(s.name, [s.input, *s.outputs]) for s in self._processors.values()]
        used += [(a.name, [a.input, *([a.output] if a.output else [])]) for a in self.aggregates]
        used += [(w.name, [w.input, *([w.output] if w.output else [])]) for w in self.windows]
        used += [(a.name, list(a.outputs)) for a in self.aggregates]
        for name, topics in used:
            for topic in topics:
                if topic not in self._topics:
                    raise ConfigError(
                        f"processor {name} uses topic {topic}, which app {self.name} "
                        f"does not declare (add app.topic({topic!r}, ...))"
                    )
        self._validate_tables()
        self._validate_concurrency()
        for flow in self._workflows.values():
            flow.validate()

    def _validate_concurrency(self) -> None:
        """Refuse, with one clear line, what concurrent processors cannot keep their
        promises with (see :mod:`streamkit.runtime.concurrency`)."""
        for spec in self._processors.values():
            if not spec.concurrent:
                continue
            kind = "an async processor" if spec.is_async else f"concurrency={spec.concurrency}"
            if self.guarantee == "exactly_once":
                raise ConfigError(
                    f"processor {spec.name} has {kind}, which exactly_once cannot cover (a "
                    "transaction commits a batch, and its records finish later): use "
                    "at_least_once with dedupe=, or run it one record at a time"
                )
            others = [p.name for p in self.processors if p.input == spec.input and p is not spec]
            others += [a.name for a in self.aggregates if a.input == spec.input]
            others += [w.name for w in self.windows if w.input == spec.input]
            if others:
                raise ConfigError(
                    f"processor {spec.name} has {kind} and shares its input {spec.input} with "
                    f"{', '.join(others)}: a concurrent processor needs an input of its own "
                    "(let it emit to a topic the others read)"
                )

    def __repr__(self) -> str:
        return f"App({self.name!r}, processors={list(self._processors)})"


def load_app(target: str) -> App:
    """Import ``module[:attribute]`` and return its App (the only one, or ``attribute``)."""
    module_name, _, attribute = target.partition(":")
    if os.getcwd() not in sys.path:  # like `python -m`: the current project is importable
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import {module_name}: {exc}") from exc
    if attribute:
        app = getattr(module, attribute, None)
        if not isinstance(app, App):
            raise ConfigError(f"{target} is not a streamkit App")
        return app
    apps = [value for value in vars(module).values() if isinstance(value, App)]
    if len(apps) != 1:
        found = "no App" if not apps else f"{len(apps)} Apps"
        raise ConfigError(f"{module_name} has {found}; name one as {module_name}:attribute")
    return apps[0]
