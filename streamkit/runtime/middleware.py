"""The middleware chain: each hook of the app's :class:`~streamkit.processor.Middleware`
bound once, only where a middleware overrides it, so an unused hook costs nothing."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from typing import Literal

from streamkit.failures.failure import Decision, Failure
from streamkit.processor import Middleware, RecordInfo

__all__ = ["Middleware", "MiddlewareChain", "RecordInfo"]

AddedHeaders = list[tuple[str, bytes]]


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
        self._late = [m.on_late for m in ms if _overrides(m, "on_late")]
        self._step = [m.on_step for m in ms if _overrides(m, "on_step")]

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
    def record(self, record: RecordInfo) -> Iterator[AddedHeaders]:
        """Enter every ``on_record`` context; yield the headers they add."""
        headers: AddedHeaders = []
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

    def late(self, store: str, count: int) -> None:
        """Call every ``on_late``."""
        for hook in self._late:
            hook(store, count)

    def steps(self, calls: Sequence[tuple[str, str, str, float]]) -> None:
        """Call every ``on_step`` for each (workflow, step, outcome, seconds)."""
        for hook in self._step:
            for call in calls:
                hook(*call)
