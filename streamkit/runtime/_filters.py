"""``where=`` and ``where_headers=`` of an app's processors, compiled once (see
:mod:`streamkit.runtime.where`), and the records they kept from each processor."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streamkit.app import App
from streamkit.errors import ConfigError
from streamkit.records import Headers, Message
from streamkit.runtime.outcome import Outcome
from streamkit.runtime.where import compile_header_pattern, compile_pattern

__all__ = ["Filters"]


class Filters:
    """The compiled patterns of ``app``'s processors; a bad pattern is a
    :class:`~streamkit.errors.ConfigError` naming the processor, the field and the
    operator."""

    def __init__(self, app: App) -> None:
        self.events: dict[str, Callable[[Any], bool]] = {}
        self.headers: dict[str, dict[str, Callable[[Any], bool]]] = {}
        self.unmatched: dict[str, int] = {}
        """Records kept from each processor by its patterns, so far."""
        self.names: dict[str, list[str]] = {}
        for spec in app.processors:
            self.names.setdefault(spec.input, []).append(spec.name)
        self._skippers: dict[str, Callable[[Message], bool] | None] = {}
        for spec in app.processors:
            for kind, pattern in (("where", spec.where), ("where_headers", spec.where_headers)):
                if pattern is None:
                    continue
                try:
                    if kind == "where":
                        self.events[spec.name] = compile_pattern(pattern)
                    else:
                        matcher = compile_header_pattern(pattern)
                        self.headers.setdefault(spec.input, {})[spec.name] = matcher
                except ValueError as exc:
                    raise ConfigError(f"processor {spec.name}: {kind}: {exc}") from None
        for topic, by_name in self.headers.items():
            others = [s for s in app.processors if s.input == topic and s.name not in by_name]
            stateful = any(a.input == topic for a in app.aggregates) or any(
                w.input == topic for w in app.windows
            )
            if not others and not stateful:  # nobody else reads it: skip without decoding
                self._skippers[topic] = self._skipper(by_name)

    def skipper(self, topic: str) -> Callable[[Message], bool] | None:
        """For a topic whose every reader has ``where_headers``: a function telling that no
        processor wants a record (so it is not even decoded); else None."""
        return self._skippers.get(topic)

    def _skipper(self, by_name: dict[str, Callable[[Any], bool]]) -> Callable[[Message], bool]:
        unmatched = self.unmatched

        def skip(msg: Message) -> bool:
            """Whether no processor wants the record; its misses are counted here only
            then (else :meth:`allowed` counts them, as the record goes on)."""
            headers = msg.headers()
            if any(match(headers) for match in by_name.values()):
                return False
            for name in by_name:
                unmatched[name] = unmatched.get(name, 0) + 1
            return True

        return skip

    def allowed(
        self, topic: str, headers: Headers, only: frozenset[str] | None, outcome: Outcome
    ) -> frozenset[str] | None:
        """``only`` without the processors of ``topic`` whose header pattern the record's
        ``headers`` miss (None: every processor)."""
        by_name = self.headers.get(topic)
        if not by_name:
            return only
        missed = {name for name, match in by_name.items() if not match(headers)}
        if not missed:
            return only
        self._count(missed, outcome)
        names = frozenset(self.names.get(topic, ())) if only is None else only
        return names - missed

    def event_matches(self, name: str, event: Any, outcome: Outcome) -> bool:
        """Whether processor ``name`` wants ``event`` (True when it has no ``where``)."""
        match = self.events.get(name)
        if match is None or match(event):
            return True
        self._count((name,), outcome)
        return False

    def _count(self, names: Any, outcome: Outcome) -> None:
        for name in names:
            self.unmatched[name] = self.unmatched.get(name, 0) + 1
        outcome.filtered += len(names)
        outcome.done.extend(names)
