"""Dead-letter records: the original bytes, plus headers that say what went wrong.

The DLQ record keeps the input's key, value and headers byte for byte, and appends
``__streamkit.error.*`` headers (named like Kafka Connect's ``__connect.errors.*``):

=============================  ===============================================
``exception.class.name``       the exception's qualified class name
``exception.message``          its message (at most 1,000 characters)
``exception.stacktrace``       the traceback (at most 4,000 characters)
``stage``                      decode, process, encode or produce
``attempts``                   how many times the processor was tried
``topic`` ``partition``        where the record came from
``offset`` ``timestamp``
``app`` ``group``              who failed it
``processor``                  which processor (empty for a decode failure)
``failed.at``                  when, in milliseconds since the epoch
=============================  ===============================================
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass

from streamkit.observability.logs import scrub
from streamkit.runtime.failure import Failure

__all__ = [
    "ERROR_PREFIX",
    "REDRIVE_COUNT",
    "REDRIVE_FROM",
    "REDRIVE_PROCESSOR",
    "DeadLetter",
    "dead_letter_headers",
    "dlq_topic",
    "original_headers",
    "parked_topic",
    "read_dead_letter",
]

ERROR_PREFIX = "__streamkit.error."
REDRIVE_COUNT = "__streamkit.redrive.count"
REDRIVE_FROM = "__streamkit.redrive.from"
REDRIVE_PROCESSOR = "__streamkit.redrive.processor"
_MESSAGE_LIMIT = 1000
_TRACE_LIMIT = 4000


def dlq_topic(app: str, input_topic: str) -> str:
    """The dead-letter topic of ``app`` for records of ``input_topic``."""
    return f"{app}-{input_topic}-dlq"


def parked_topic(app: str, input_topic: str) -> str:
    """Where records that failed again after too many redrives are parked."""
    return f"{app}-{input_topic}-parked"


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 15] + "... [truncated]"


def dead_letter_headers(
    failure: Failure, *, app: str, group: str, source_timestamp: int, now_ms: int | None = None
) -> list[tuple[str, bytes]]:
    """The ``__streamkit.error.*`` headers for ``failure``."""
    error = failure.error
    kind = type(error)
    trace = "".join(traceback.format_exception(kind, error, error.__traceback__))
    values = {
        "exception.class.name": f"{kind.__module__}.{kind.__qualname__}",
        "exception.message": _truncate(scrub(str(error)), _MESSAGE_LIMIT),
        "exception.stacktrace": _truncate(scrub(trace), _TRACE_LIMIT),
        "stage": failure.stage.value,
        "attempts": str(failure.attempt),
        "topic": failure.topic,
        "partition": str(failure.partition),
        "offset": str(failure.offset),
        "timestamp": str(source_timestamp),
        "app": app,
        "group": group,
        "processor": failure.processor,
        "failed.at": str(now_ms if now_ms is not None else int(time.time() * 1000)),
    }
    return [(ERROR_PREFIX + name, value.encode("utf-8")) for name, value in values.items()]


def original_headers(
    headers: Sequence[tuple[str, bytes | None]],
) -> list[tuple[str, bytes | None]]:
    """A DLQ record's headers without the ones streamkit added (error and redrive)."""
    return [
        (k, v)
        for k, v in headers
        if not k.startswith(ERROR_PREFIX) and not k.startswith("__streamkit.redrive.")
    ]


@dataclass(frozen=True)
class DeadLetter:
    """A DLQ record read back: the failure's headers and the original record."""

    dlq_topic: str
    dlq_partition: int
    dlq_offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    error: dict[str, str]
    redrives: int

    @property
    def source_topic(self) -> str:
        """The topic the failed record came from."""
        return self.error.get("topic", "")

    @property
    def processor(self) -> str:
        """The processor that failed (empty for decode failures)."""
        return self.error.get("processor", "")

    @property
    def error_class(self) -> str:
        """The exception's qualified class name."""
        return self.error.get("exception.class.name", "")

    @property
    def failed_at(self) -> int:
        """When it failed, in milliseconds since the epoch."""
        return int(self.error.get("failed.at", "0") or 0)


def read_dead_letter(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes | None]],
) -> DeadLetter:
    """Split a consumed DLQ record into its error headers and the original record."""
    error = {
        k[len(ERROR_PREFIX) :]: (v or b"").decode("utf-8", "replace")
        for k, v in headers
        if k.startswith(ERROR_PREFIX)
    }
    redrives = 0
    for k, v in headers:
        if k == REDRIVE_COUNT and v:
            redrives = int(v.decode() or 0)
    return DeadLetter(
        topic, partition, offset, key, value, tuple(original_headers(headers)), error, redrives
    )
