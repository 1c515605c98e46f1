"""The one place every record failure goes through.

Whatever fails for a record (decoding its bytes, its contract, the processor function,
encoding an output, producing it) becomes a :class:`Failure` handed to the engine's
:class:`FailureHandler`, which answers with a :class:`Decision`: retry after a delay,
dead-letter the record, skip it, or stop the worker. The runtime carries the decision out;
the default handler of an app is :class:`streamkit.failures.FailurePolicy`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

__all__ = [
    "DEAD_LETTER",
    "SKIP",
    "STOP",
    "Action",
    "Decision",
    "Failure",
    "FailureHandler",
    "Stage",
]


class Stage(StrEnum):
    """Where in the record's path the failure happened."""

    DECODE = "decode"
    PROCESS = "process"
    ENCODE = "encode"
    PRODUCE = "produce"


class Action(StrEnum):
    """What to do with a failed record."""

    RETRY = "retry"
    DEAD_LETTER = "dead_letter"
    SKIP = "skip"
    STOP = "stop"


@dataclass(frozen=True)
class Decision:
    """A handler's answer; ``delay`` (seconds) matters for :attr:`Action.RETRY`."""

    action: Action
    delay: float = 0.0


STOP = Decision(Action.STOP)
DEAD_LETTER = Decision(Action.DEAD_LETTER)
SKIP = Decision(Action.SKIP)


@dataclass(frozen=True)
class Failure:
    """A failed record: its coordinates, the stage, the processor, the exception, the attempt."""

    stage: Stage
    topic: str
    partition: int
    offset: int
    error: BaseException
    processor: str = ""
    output_topic: str = ""
    attempt: int = 1

    def describe(self) -> str:
        """One line: what failed, for which record, and why."""
        who = f" in processor {self.processor}" if self.processor else ""
        to = f" to {self.output_topic}" if self.output_topic else ""
        tries = f" (attempt {self.attempt})" if self.attempt > 1 else ""
        cause = f"{type(self.error).__name__}: {self.error}"
        return (
            f"{self.stage.value}{to} failed for {self.topic}[{self.partition}]@{self.offset}"
            f"{who}{tries}: {cause}"
        )


class FailureHandler(Protocol):
    """Decides what a failure means."""

    def on_failure(self, failure: Failure) -> Decision:
        """Decide for one failure."""
        ...
