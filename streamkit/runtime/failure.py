"""The one place every record failure goes through.

Whatever fails for a record (decoding its bytes, its contract, the processor function,
encoding an output, producing it) becomes a :class:`Failure` handed to the worker's
:class:`FailureHandler`. The default handler, :class:`StopOnFailure`, stops the worker with
a message that names the record and the cause; nothing at or after the failed record is
committed, so the record is processed again when the worker restarts.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from streamkit.errors import ProcessingFailedError

__all__ = ["Failure", "FailureHandler", "Stage", "StopOnFailure"]


class Stage(StrEnum):
    """Where in the record's path the failure happened."""

    DECODE = "decode"
    PROCESS = "process"
    ENCODE = "encode"
    PRODUCE = "produce"


@dataclass(frozen=True)
class Failure:
    """A failed record: its coordinates, the stage, the processor, and the exception."""

    stage: Stage
    topic: str
    partition: int
    offset: int
    error: BaseException
    processor: str = ""
    output_topic: str = ""

    def describe(self) -> str:
        """One line: what failed, for which record, and why."""
        who = f" in processor {self.processor}" if self.processor else ""
        to = f" to {self.output_topic}" if self.output_topic else ""
        cause = f"{type(self.error).__name__}: {self.error}"
        return (
            f"{self.stage.value}{to} failed for {self.topic}[{self.partition}]@{self.offset}"
            f"{who}: {cause}"
        )


class FailureHandler(Protocol):
    """Decides what a failure means. Return to skip the record; raise to stop the worker."""

    def on_failure(self, failure: Failure) -> None:
        """Handle one failure."""
        ...


class StopOnFailure:
    """The default: stop the worker at the first failure (until retries and DLQs exist)."""

    def on_failure(self, failure: Failure) -> None:
        raise ProcessingFailedError(failure)
