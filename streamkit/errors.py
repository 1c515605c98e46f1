"""The exceptions streamkit raises, and those a user's function raises to tell it
something.

Every error streamkit raises on purpose derives from :class:`StreamkitError`, so a caller
can catch one root. Each leaf documents when it is raised. Messages are one line that
says what went wrong and where; they never contain secrets. Two are signals, raised by a
user's function and never by streamkit: :class:`Retry` (try this record again) and
:class:`StepFailed` (a workflow step failed for good).
"""

from __future__ import annotations

from typing import Any, Self

__all__ = [
    "BrokerError",
    "ConfigError",
    "ContractError",
    "GatherTimeoutError",
    "KafkaOperationError",
    "KafkaUnreachableError",
    "KeyMismatchError",
    "OutputError",
    "OutputTooLargeError",
    "ProcessingFailedError",
    "ProcessorTimeoutError",
    "Retry",
    "SerializationError",
    "StepFailed",
    "StepTimeoutError",
    "StreamkitError",
    "WindowStateTooLargeError",
    "WorkflowError",
    "WorkflowExpiredError",
]


class StreamkitError(Exception):
    """Root of every error streamkit raises on purpose."""


class ConfigError(StreamkitError):
    """A setting is missing, malformed or contradicts another one."""


class BrokerError(StreamkitError):
    """The local broker could not be prepared, started, stopped or found."""


class KafkaOperationError(StreamkitError):
    """A Kafka client or admin operation failed (timeout, refused, unknown topic...)."""


class KafkaUnreachableError(KafkaOperationError):
    """No broker of the bootstrap servers answers (refused, unresolvable, timing out, or
    refusing the credentials)."""


class SerializationError(StreamkitError):
    """Bytes could not be decoded into an event, or an event could not be encoded.

    The message names the topic, partition, offset and schema when they are known:
    a serde raises it with the schema and the reason, and the runtime adds the record's
    coordinates with :meth:`at`.
    """

    def __init__(self, reason: str, *, schema: str = "", where: str = "") -> None:
        self.reason = reason
        self.schema = schema
        self.where = where
        super().__init__(reason)

    def at(self, topic: str, partition: int | None = None, offset: int | None = None) -> Self:
        """A copy of this error that names the record's topic, partition and offset."""
        where = topic
        if partition is not None:
            where += f"[{partition}]"
        if offset is not None and offset >= 0:
            where += f"@{offset}"
        copy = type(self)(self.reason, schema=self.schema, where=where)
        copy.__cause__ = self.__cause__
        return copy

    def __str__(self) -> str:
        prefix = f"{self.where}: " if self.where else ""
        suffix = f" (schema {self.schema})" if self.schema else ""
        return f"{prefix}{self.reason}{suffix}"


class ContractError(SerializationError):
    """An event does not satisfy the Avro contract declared for its topic."""


class KeyMismatchError(StreamkitError):
    """A record's Kafka key is not the state key it would be folded into: folding it would
    split that key's state across partitions. Never retried: the record is dead-lettered."""


class WindowStateTooLargeError(StreamkitError):
    """A window's state would be larger than a record Kafka accepts (``max_bytes``); the
    record is not folded, never retried: it is dead-lettered."""


class GatherTimeoutError(StreamkitError):
    """A gather's group timed out incomplete and its ``on_timeout`` is ``dead_letter``:
    the group is closed (``state``) and its parts go to the dead-letter topic, never
    retried."""

    def __init__(self, message: str, state: Any, parts: Any) -> None:
        super().__init__(message)
        self.state = state
        self.parts = parts


class WorkflowExpiredError(GatherTimeoutError):
    """Events buffered for a workflow instance that never started outlived the workflow's
    ``buffer_ttl``: they go to the dead-letter topic (``parts``), and the instance is
    forgotten (``state`` None)."""


class StepTimeoutError(StreamkitError):
    """A workflow step took longer than its ``timeout=``: a failed attempt (retried as the
    step's retry policy says, then compensated)."""


class WorkflowError(StreamkitError):
    """A workflow step did something its definition does not allow (a ``Goto`` to a step
    not in its ``next=``, an emit to an undeclared topic, a result that is not JSON), or
    an instance buffered more events than ``buffer_max``."""


class ProcessorTimeoutError(StreamkitError):
    """A processor call took longer than its ``timeout=``: a failure of the record like any
    other (retried, then dead-lettered, as its retry policy says)."""


class ProcessingFailedError(StreamkitError):
    """A record could not be processed and the failure policy says stop.

    Raised by the runtime's failure hook; ``failure`` holds the record's coordinates,
    the stage (decode, process, encode, produce) and the cause.
    """

    def __init__(self, failure: Any) -> None:
        self.failure = failure
        super().__init__(failure.describe())


class OutputError(StreamkitError):
    """A processor returned something that cannot be routed (raised per record)."""


class OutputTooLargeError(KafkaOperationError):
    """An output record is larger than its topic (or the producer) accepts."""


class Retry(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raise from a processor to ask for another attempt, after ``delay`` seconds if given.

    It counts against the processor's attempts; when they are spent the record is
    dead-lettered with this exception's message.
    """

    def __init__(self, message: str = "retry requested", *, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class StepFailed(Exception):  # noqa: N818 - a business outcome, not a programming error
    """Raise from a step to fail it for good (no retry): the saga compensates."""
