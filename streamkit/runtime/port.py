"""What a per-partition task needs of the engine that runs it (:class:`Port`), and the
small records it keeps about its partition: its hold, its pending retry, its backoff."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from streamkit.records import TP
from streamkit.state.partition import PartitionState

if TYPE_CHECKING:
    from streamkit.runtime.task import PartitionTask

__all__ = ["Backoff", "Counters", "Hold", "Port", "RetryState"]


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


class Port(Protocol):
    """What a task needs of the engine that runs it."""

    log: logging.Logger
    counters: Counters

    def now_ms(self) -> int:
        """The engine's wall clock, in milliseconds."""
        ...

    def pause(self, task: PartitionTask, hold: Hold) -> None:
        """Deliver nothing more of the task's partition; when resumed, start again at
        ``hold.offset``."""
        ...

    def resume(self, task: PartitionTask) -> None:
        """Deliver the task's partition again."""
        ...

    def caught_up(self, task: PartitionTask) -> bool:
        """Whether no record of the task's partition waits to be handled (windows are
        idle only then)."""
        ...

    def read_ends(self, tps: list[TP]) -> dict[TP, int]:
        """The end offset now (asked of the broker, not cached) of each of ``tps``."""
        ...

    def read_to(self, ends: dict[TP, int]) -> bool:
        """Whether every record before ``ends`` was handled, and what was produced from
        them acknowledged: here, or (a partition another worker holds) by the group."""
        ...

    def feeder_partitions(self, topics: frozenset[str]) -> list[TP]:
        """Every partition of ``topics`` (the topics routed into a partition), wherever
        it is handled."""
        ...

    def state_of(self, tp: TP) -> PartitionState | None:
        """The state of partition ``tp`` if this engine holds it (a retry record is
        processed with its origin partition's state)."""
        ...
