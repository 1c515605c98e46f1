"""Processor functions: the decorator's spec, the context they may ask for, and output routing.

A processor is a plain function of the event (and optionally a :class:`Context`). What it
returns decides what is produced:

* ``None``: nothing (the event is filtered out);
* a value: one record to the processor's ``output`` topic;
* an :class:`Emit`: one record to the topic it names (one of the declared ``outputs``);
* a list or tuple of values and/or :class:`Emit`: several records, in that order (fan-out).

An emitted record keeps the input's key unless the :class:`Emit` gives another one.

Everything around processor functions (metrics, tracing, custom checks) is
:class:`Middleware`: typed hooks that an app declares with ``App(middleware=[...])``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, cast

from streamkit.errors import ConfigError, OutputError
from streamkit.failures.policy import RetryPolicy
from streamkit.middleware import Middleware, RecordInfo
from streamkit.records import Headers
from streamkit.settings import parse_duration
from streamkit.state.dedupe import Dedupe
from streamkit.state.tables import TableLookup
from streamkit.state.timers import Timers

__all__ = [
    "ASYNC_CONCURRENCY",
    "KEEP_KEY",
    "ORDERINGS",
    "Context",
    "Emit",
    "Middleware",
    "Ordering",
    "ProcessorSpec",
    "RecordInfo",
    "positional",
    "route",
]


Ordering = Literal["key", "partition", "unordered"]
"""What stays in order when a processor's records run concurrently."""

ORDERINGS: Final = ("key", "partition", "unordered")


class _KeepKey:
    def __repr__(self) -> str:
        return "KEEP_KEY"


KEEP_KEY: Final[Any] = _KeepKey()
"""Sentinel: the emitted record keeps the input record's key (the default)."""


@dataclass(frozen=True, slots=True)
class Emit:
    """One record for ``topic``: the value, and optionally a new key and headers."""

    topic: str
    value: Any
    key: Any = KEEP_KEY
    headers: Mapping[str, str | bytes] | Sequence[tuple[str, str | bytes]] | None = None

    def header_bytes(self) -> list[tuple[str, bytes]] | None:
        """The headers as (name, bytes) pairs (None: none)."""
        if not self.headers:
            return None
        items = self.headers.items() if isinstance(self.headers, Mapping) else self.headers
        return [(k, v.encode() if isinstance(v, str) else v) for k, v in items]


class Context:
    """Where the event came from; a processor gets it by taking a second parameter.

    ``timers`` is the processor's (or aggregate's) :class:`~streamkit.state.timers.Timers`
    when it declares ``on_timer=`` (else None); a timer firing gets a context too, with
    ``offset`` -1.
    """

    __slots__ = (
        "headers",
        "key",
        "offset",
        "partition",
        "processor",
        "timers",
        "timestamp",
        "topic",
    )

    def __init__(
        self,
        *,
        topic: str,
        partition: int,
        offset: int,
        timestamp: int,
        key: Any,
        headers: Headers,
        processor: str,
        timers: Timers | None = None,
    ) -> None:
        self.timers = timers
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestamp = timestamp
        self.key = key
        self.headers = headers
        self.processor = processor

    def header(self, name: str) -> bytes | None:
        """The last value of header ``name``, or None."""
        found = None
        for key, value in self.headers:
            if key == name:
                found = value
        return found

    def __repr__(self) -> str:
        return (
            f"Context({self.topic}[{self.partition}]@{self.offset}, key={self.key!r}, "
            f"processor={self.processor})"
        )


@dataclass(frozen=True)
class ProcessorSpec:
    """A declared processor.

    Attributes:
        name: unique within the app (default: the function's name).
        fn: the function.
        input: the topic it consumes.
        output: the topic a plain return value goes to (None: only emits).
        outputs: every topic it may emit to (``output`` included).
        takes_context: whether ``fn`` takes a second, :class:`Context`, parameter.
        retry: its retry policy (None: the app's default).
        retry_topics: delays of its non-blocking retry topics, in seconds (empty: retries
            block the partition instead).
        dedupe: run at most once per event id within a window (see ``streamkit.state.dedupe``).
        on_timer: ``(timer) -> result`` or ``(timer, ctx) -> result``, called when a timer
            the processor set fires; its result is routed like the processor's.
        concurrency: records of its input run at once (1: one at a time, in the loop).
        ordering: under concurrency, what stays in order: ``"key"`` (a key's records one
            after another), ``"partition"`` or ``"unordered"``.
        timeout: seconds one call may take before it counts as a failure (None: no limit).
        is_async: ``fn`` is a coroutine function (it runs on the worker's event loop).
        where: an event pattern the decoded event must match for ``fn`` to run.
        where_headers: an event pattern of the record's headers, checked before decoding.
        tables: the tables it reads, passed after the event (see
            :mod:`streamkit.state.tables`).
        queue: consumes through a Kafka share group (per-record acknowledgement, workers
            past the partition count); see :mod:`streamkit.runtime.queues`.
    """

    name: str
    fn: Callable[..., Any]
    input: str
    output: str | None
    outputs: tuple[str, ...]
    takes_context: bool
    retry: RetryPolicy | None = None
    retry_topics: tuple[float, ...] = ()
    dedupe: Dedupe | None = None
    on_timer: Callable[..., Any] | None = None
    concurrency: int = 1
    ordering: Ordering = "key"
    timeout: float | None = None
    is_async: bool = False
    where: Mapping[str, Any] | None = None
    where_headers: Mapping[str, Any] | None = None
    tables: tuple[TableLookup, ...] = ()
    queue: bool = False

    @property
    def concurrent(self) -> bool:
        """Whether its records run beside each other (off the loop), not one at a time."""
        return self.is_async or self.concurrency > 1

    @property
    def timer_takes_context(self) -> bool:
        """Whether ``on_timer`` takes a second, :class:`Context`, parameter."""
        return self.on_timer is not None and positional(self.on_timer) == 2

    @classmethod
    def build(
        cls,
        fn: Callable[..., Any],
        *,
        input: str,
        output: str | None,
        outputs: Sequence[str],
        name: str | None,
        retries: int | RetryPolicy | None = None,
        retry_topics: Sequence[str] = (),
        dedupe: Dedupe | None = None,
        on_timer: Callable[..., Any] | None = None,
        concurrency: int | None = None,
        ordering: str = "key",
        timeout: str | float | None = None,
        where: Mapping[str, Any] | None = None,
        where_headers: Mapping[str, Any] | None = None,
        tables: Sequence[TableLookup] = (),
        queue: bool = False,
    ) -> ProcessorSpec:
        """Check a decorated function's declaration and make its spec."""
        label = str(name or getattr(fn, "__name__", repr(fn)))
        if not callable(fn):
            raise ConfigError(f"processor {label}: {fn!r} is not callable")
        count = positional(fn, f"processor {label}") - len(tables)
        if not 1 <= count <= 2:
            names = "".join(f", {t.table.name}" for t in tables)
            raise ConfigError(
                f"processor {label} must take (event{names}) or (event{names}, ctx), not "
                f"{count + len(tables)} parameters"
            )
        if tables and (inspect.iscoroutinefunction(fn) or (concurrency or 1) > 1):
            raise ConfigError(
                f"processor {label} reads tables and runs concurrently: not supported yet "
                "(tables are read on the worker's loop); drop concurrency= or tables="
            )
        if on_timer is not None and not 1 <= positional(on_timer, f"processor {label}") <= 2:
            raise ConfigError(f"processor {label}: on_timer must take (timer) or (timer, ctx)")
        if on_timer is not None and count != 2:
            raise ConfigError(
                f"processor {label} has on_timer= but takes no ctx to set timers with: "
                "make it (event, ctx) and call ctx.timers.schedule(...)"
            )
        if not input or not isinstance(input, str):
            raise ConfigError(f"processor {label}: input must be a topic name")
        allowed = tuple(dict.fromkeys([*([output] if output else []), *outputs]))
        if input in allowed:
            raise ConfigError(f"processor {label} would write to its own input topic {input}")
        policy = None
        if retries is not None:
            policy = (
                retries
                if isinstance(retries, RetryPolicy)
                else RetryPolicy.of(retries, RetryPolicy())
            )
        delays = tuple(parse_duration(d) for d in retry_topics)
        is_async = inspect.iscoroutinefunction(fn)
        width = _concurrency(label, concurrency, is_async)
        if ordering not in ORDERINGS:
            raise ConfigError(
                f"processor {label}: ordering={ordering!r} is not one of {', '.join(ORDERINGS)}"
            )
        limit = None if timeout is None else _timeout(label, timeout)
        if (is_async or width > 1) and (on_timer is not None or delays):
            what = "on_timer=" if on_timer is not None else "retry_topics="
            raise ConfigError(
                f"processor {label} runs concurrently and cannot take {what}: timers and "
                "retry topics need records settled in order; drop one of them"
            )
        if on_timer is not None and inspect.iscoroutinefunction(on_timer):
            raise ConfigError(f"processor {label}: on_timer must be a plain function")
        return cls(
            label,
            fn,
            input,
            output,
            allowed,
            takes_context=count == 2,
            retry=policy,
            retry_topics=delays,
            dedupe=dedupe,
            on_timer=on_timer,
            concurrency=width,
            ordering=cast(Ordering, ordering),
            timeout=limit,
            is_async=is_async,
            where=where,
            where_headers=where_headers,
            tables=tuple(tables),
            queue=bool(queue),
        )


ASYNC_CONCURRENCY: Final = 100
"""Records an ``async def`` processor runs at once unless it says ``concurrency=``."""


def _concurrency(label: str, concurrency: int | None, is_async: bool) -> int:
    if concurrency is None:
        return ASYNC_CONCURRENCY if is_async else 1
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigError(
            f"processor {label}: concurrency must be a whole number of at least 1, "
            f"not {concurrency!r}"
        )
    return concurrency


def _timeout(label: str, timeout: str | float) -> float:
    try:
        seconds = timeout if isinstance(timeout, int | float) else parse_duration(timeout)
    except (ValueError, ConfigError) as exc:
        raise ConfigError(f"processor {label}: timeout={timeout!r}: {exc}") from None
    if seconds <= 0:
        raise ConfigError(f"processor {label}: timeout must be positive, not {timeout!r}")
    return float(seconds)


def positional(fn: Callable[..., Any], label: str = "") -> int:
    """How many positional parameters ``fn`` takes (``label`` names its owner in the error
    when its signature cannot be read)."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{label}: cannot read the signature of {fn!r}: {exc}") from exc
    return sum(1 for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


def route(spec: ProcessorSpec, result: Any) -> list[Emit]:
    """The records a processor's return value stands for (see the module docstring)."""
    if result is None:
        return []
    if isinstance(result, Emit):
        return [_checked(spec, result)]
    if isinstance(result, list | tuple):
        return [_checked(spec, _as_emit(spec, item)) for item in result if item is not None]
    return [_as_emit(spec, result)]


def _as_emit(spec: ProcessorSpec, value: Any) -> Emit:
    if isinstance(value, Emit):
        return value
    if spec.output is None:
        raise OutputError(
            f"processor {spec.name} returned a value but declares no output topic; "
            "declare output=... or return Emit(topic, value)"
        )
    return Emit(spec.output, value)


def _checked(spec: ProcessorSpec, emit: Emit) -> Emit:
    if emit.topic not in spec.outputs:
        declared = ", ".join(spec.outputs) or "none"
        raise OutputError(
            f"processor {spec.name} emitted to {emit.topic}, which is not among its "
            f"outputs ({declared})"
        )
    return emit
