"""The small records a per-partition task keeps about its partition (its hold, its pending
retry, its backoff) and the counters it keeps for its engine. What a task needs of the
engine that runs it, :class:`~streamkit.runtime.task.Port`, is declared beside the task."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Backoff", "Counters", "Hold", "RetryState"]


@dataclass
class Counters:
    """Counts of what an engine's tasks did (exported as metrics)."""

    filtered: int = 0
    late: int = 0
    retries: int = 0
    dead_letters: int = 0
    retry_forwards: int = 0
    rewinds: int = 0


@dataclass
class Backoff:
    """Growing waits for an infrastructure problem (1 s, 2 s, 4 s ... up to 30 s)."""

    initial: float = 1.0
    maximum: float = 30.0
    current: float = 0.0

    def next(self) -> float:
        """The next wait, and grow."""
        self.current = min(self.maximum, self.current * 2 if self.current else self.initial)
        return self.current

    def reset(self) -> None:
        """Progress was made: the next wait starts small again."""
        self.current = 0.0


@dataclass(frozen=True)
class Hold:
    """A partition held at ``offset`` until ``until_ms`` (the engine's clock).

    ``waits`` are the retries it waits for: (processor, failed attempt, seconds).
    """

    offset: int
    until_ms: int
    waits: tuple[tuple[str, int, float], ...] = ()


@dataclass(frozen=True)
class RetryState:
    """A blocking retry pending at ``offset``: the next attempt, of these processors."""

    offset: int
    attempt: int
    only: frozenset[str]
