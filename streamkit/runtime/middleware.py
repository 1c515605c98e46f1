"""Middleware: the one extension point around processor functions.

A middleware subclasses :class:`Middleware` and overrides the hooks it needs; the others
are no-ops and cost nothing (only overridden hooks are called). Hooks are typed and named
for what they observe; an exception raised by a hook is not swallowed.

=====================  ==========================================================
``on_consumed``        records taken from a topic in one batch
``on_record``          around one record: enter before its processors run, exit after;
                       the headers it returns are added to every output and dead letter
``on_processed``       one processor call: duration and how it ended
``on_failure``         a failure and the decision taken
``on_produced``        acknowledged records per topic (once per loop iteration)
``on_rebalance``       partitions assigned, revoked or lost
=====================  ==========================================================
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from typing import Literal

from streamkit.runtime.failure import Decision, Failure

__all__ = ["Middleware", "MiddlewareChain", "RecordInfo"]

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class RecordInfo:
    """The record a hook is about."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    headers: Sequence[tuple[str, bytes | None]]
    group: str


class Middleware:
    """Base class: every hook does nothing until overridden."""

    def on_consumed(self, topic: str, count: int) -> None:
        """``count`` records of ``topic`` were taken in one batch."""

    def on_record(self, record: RecordInfo) -> AbstractContextManager[Headers] | None:
        """A context entered around the record's processing (None: nothing to do).

        The value it yields is a list of headers added to the record's outputs and dead
        letters (a trace context, for example).
        """
        return None

    def on_processed(self, processor: str, seconds: float, outcome: str) -> None:
        """A processor call ended: ``outcome`` is emitted, filtered or failed."""

    def on_failure(self, failure: Failure, decision: Decision) -> None:
        """A record failed; ``decision`` is what happens to it."""

    def on_produced(self, counts: Mapping[str, int]) -> None:
        """Records acknowledged by the broker since the last call, per topic."""

    def on_rebalance(self, kind: Literal["assigned", "revoked", "lost"], count: int) -> None:
        """Partitions changed hands."""


def _overrides(middleware: Middleware, hook: str) -> bool:
    return getattr(type(middleware), hook) is not getattr(Middleware, hook)


class MiddlewareChain:
    """The app's middlewares, with each hook bound only where it is overridden."""

    def __init__(self, middlewares: Sequence[Middleware] = ()) -> None:
        self.middlewares = list(middlewares)

        ms = self.middlewares
        self._consumed = [m.on_consumed for m in ms if _overrides(m, "on_consumed")]
        self._record = [m.on_record for m in ms if _overrides(m, "on_record")]
        self._processed = [m.on_processed for m in ms if _overrides(m, "on_processed")]
        self._failure = [m.on_failure for m in ms if _overrides(m, "on_failure")]
        self._produced = [m.on_produced for m in ms if _overrides(m, "on_produced")]
        self._rebalance = [m.on_rebalance for m in ms if _overrides(m, "on_rebalance")]

    @property
    def wants_records(self) -> bool:
        """Whether any middleware wraps records."""
        return bool(self._record)

    @property
    def wants_timing(self) -> bool:
        """Whether any middleware wants processor durations."""
        return bool(self._processed)

    def consumed(self, topic: str, count: int) -> None:
        """Call every ``on_consumed``."""
        for hook in self._consumed:
            hook(topic, count)

    @contextmanager
    def record(self, record: RecordInfo) -> Iterator[Headers]:
        """Enter every ``on_record`` context; yield the headers they add."""
        headers: Headers = []
        with ExitStack() as stack:
            for hook in self._record:
                context = hook(record)
                if context is not None:
                    headers.extend(stack.enter_context(context) or ())
            yield headers

    def processed(self, processor: str, seconds: float, outcome: str) -> None:
        """Call every ``on_processed``."""
        for hook in self._processed:
            hook(processor, seconds, outcome)

    def failure(self, failure: Failure, decision: Decision) -> None:
        """Call every ``on_failure``."""
        for hook in self._failure:
            hook(failure, decision)

    def produced(self, counts: Mapping[str, int]) -> None:
        """Call every ``on_produced``."""
        for hook in self._produced:
            hook(counts)

    def rebalance(self, kind: Literal["assigned", "revoked", "lost"], count: int) -> None:
        """Call every ``on_rebalance``."""
        for hook in self._rebalance:
            hook(kind, count)
