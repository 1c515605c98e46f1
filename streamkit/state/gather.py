"""Fan-in: the Aggregator of Enterprise Integration Patterns as Kafka-native state.

``@app.gather(inputs=[...], correlate=..., complete_when=N, timeout="30s")`` collects the
parts of a group (one correlation id) that arrive on several topics. Every input is first
repartitioned by its correlation id into one internal topic (so a group's parts meet in
one partition, whichever topics and keys they came with); there the group is an
aggregate's state:

- a part is identified by its input topic (or by ``part=``, a field or function of the
  part, for several parts from one topic); a second part with the same identity is a
  duplicate and is ignored;
- the group completes once: when ``complete_when`` parts (a count, or a predicate of the
  parts) are in, the function's result goes to the output and the group is closed; parts
  arriving after that are ignored;
- the group's deadline is its first part's record timestamp plus ``timeout``; a durable
  wall-clock timer fires then (after a restart too, and only once the worker has read
  what was in Kafka by then): an incomplete group then gives ``fn(parts, False)``
  (``on_timeout="partial"``) or goes to the dead-letter topic (``"dead_letter"``), and
  is closed. Parts are judged by their record timestamp: one written after the deadline
  does not count, even when it is read before the timer fires (a worker behind or just
  restarted), and one written before it counts, however late it is read; so an outage
  does not change a decision;
- a closed group is remembered for ``retain`` after it closed (wall clock, a durable
  timer too), so that late and duplicate parts are recognised, then forgotten: a part
  arriving later starts a new group.

The group's state is JSON (``{"parts": {...}}`` while open), in a store with a compacted
changelog, so parts must be JSON values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from streamkit.errors import ConfigError, GatherTimeoutError
from streamkit.state.stores import state_key

__all__ = ["ENVELOPE_INPUT", "ENVELOPE_PART", "GatherSpec"]

ENVELOPE_INPUT = "input"
ENVELOPE_PART = "part"
_TIMEOUT = "gather.timeout"
_FORGET = "gather.forget"


@dataclass(frozen=True)
class GatherSpec:
    """A declared gather (see the module docstring).

    Attributes:
        name: the gather's name (its function's).
        fn: ``(parts, complete) -> result``: ``parts`` maps part ids (input topics, or
            ``part=`` values) to parts; ``complete`` is False on a partial timeout.
        inputs: the topics gathered.
        correlate: the field holding the correlation id in every input, or a function of
            a part.
        complete_when: the number of distinct parts that completes a group, or a
            predicate of the parts.
        timeout_s: seconds from a group's first part to its timeout.
        on_timeout: ``partial`` or ``dead_letter``.
        part: what identifies a part within its input (None: the input topic).
        retain_s: seconds a closed group is remembered.
    """

    name: str
    fn: Callable[[dict[str, Any], bool], Any]
    inputs: tuple[str, ...]
    correlate: str | Callable[[Any], Any]
    complete_when: int | Callable[[Mapping[str, Any]], bool]
    timeout_s: float
    on_timeout: str = "partial"
    part: str | Callable[[Any], Any] | None = None
    retain_s: float = 3600.0

    def __post_init__(self) -> None:
        if not self.inputs:
            raise ConfigError(f"gather {self.name}: inputs= names no topic")
        if self.on_timeout not in {"partial", "dead_letter"}:
            raise ConfigError(
                f"gather {self.name}: on_timeout={self.on_timeout!r} is not partial or dead_letter"
            )
        if isinstance(self.complete_when, int) and self.complete_when < 1:
            raise ConfigError(f"gather {self.name}: complete_when must be at least 1")
        if self.timeout_s <= 0:
            raise ConfigError(f"gather {self.name}: timeout must be positive")

    def correlation(self, event: Any) -> str | None:
        """The correlation id of a part (None: it has none and is not gathered)."""
        return state_key(self.correlate, event, None)

    def envelope(self, topic: str, event: Any) -> dict[str, Any]:
        """A part as it travels through the repartition topic: with its input."""
        return {ENVELOPE_INPUT: topic, ENVELOPE_PART: event}

    # -- the aggregate over the repartition topic -----------------------------------------
    def fold(self, state: dict[str, Any] | None, envelope: dict[str, Any], ctx: Any) -> Any:
        """A part arrives: add it to its open group (completing it, maybe)."""
        if state is not None and state.get("closed"):
            return {"closed": True, "by": state["by"]}  # a late or duplicate part: ignored
        parts: dict[str, Any] = dict((state or {}).get("parts", {}))
        deadline = None if state is None else state.get("deadline")
        if state is None:
            deadline = int(ctx.timestamp) + int(self.timeout_s * 1000)
            ctx.timers.schedule(at=deadline, name=_TIMEOUT)
        opened = {"parts": parts} if deadline is None else {"parts": parts, "deadline": deadline}
        part = envelope[ENVELOPE_PART]
        ident = envelope[ENVELOPE_INPUT] if self.part is None else state_key(self.part, part, None)
        if ident is None or ident in parts:
            return opened
        if deadline is not None and int(ctx.timestamp) > deadline:
            return opened  # written after the deadline: the timeout decides without it
        parts[ident] = part
        if not self._complete(parts):
            return opened
        out = self.fn(parts, True)
        ctx.timers.cancel(name=_TIMEOUT)
        ctx.timers.schedule(after=self.retain_s, name=_FORGET)
        return {"closed": True, "by": "complete", "out": out}

    def on_timer(self, state: dict[str, Any] | None, timer: Any, ctx: Any) -> Any:
        """The group's timeout: close it partial, or dead-letter it; a closed group's
        retention: forget it."""
        if timer.name == _FORGET:
            return None
        if state is None or state.get("closed") or timer.name != _TIMEOUT:
            return state
        parts = state.get("parts", {})
        ctx.timers.schedule(after=self.retain_s, name=_FORGET)
        if self.on_timeout == "dead_letter":
            raise GatherTimeoutError(
                f"gather {self.name}: group {timer.key} timed out after {self.timeout_s:g}s "
                f"with {len(parts)} part(s): {', '.join(sorted(parts)) or 'none'}",
                {"closed": True, "by": "dead_letter"},
                parts,
            )
        return {"closed": True, "by": "timeout", "out": self.fn(parts, False)}

    @staticmethod
    def project(state: Any) -> list[Any]:
        """What a new state sends to the output: the result, on the change that closed the
        group only."""
        out = state.get("out") if isinstance(state, dict) else None
        return [] if out is None else [out]

    def _complete(self, parts: Mapping[str, Any]) -> bool:
        if isinstance(self.complete_when, int):
            return len(parts) >= self.complete_when
        return bool(self.complete_when(parts))
