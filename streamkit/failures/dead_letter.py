"""Dead-letter records: the original bytes, plus headers that say what went wrong.

The DLQ record keeps the input's key, value and headers byte for byte, and appends
``__streamkit.error.*`` headers (named like Kafka Connect's ``__connect.errors.*``):

=============================  ===============================================
``exception.class.name``       the exception's qualified class name
``exception.class.hierarchy``  it and its base classes, comma-separated
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

from streamkit.failures.failure import Failure
from streamkit.records import Headers
from streamkit.settings import scrub

__all__ = [
    "ERROR_PREFIX",
    "REDRIVE_COUNT",
    "REDRIVE_FROM",
    "REDRIVE_PROCESSOR",
    "DeadLetter",
    "dead_letter_headers",
    "dead_letter_record",
    "original_headers",
    "read_dead_letter",
    "redrive_count",
    "redrive_target",
]

ERROR_PREFIX = "__streamkit.error."
REDRIVE_COUNT = "__streamkit.redrive.count"
REDRIVE_FROM = "__streamkit.redrive.from"
REDRIVE_PROCESSOR = "__streamkit.redrive.processor"
RETRY_BOOKKEEPING = "__streamkit.retry."
_MESSAGE_LIMIT = 1000
_TRACE_LIMIT = 4000


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 15] + "... [truncated]"


def _qualified(kind: type) -> str:
    return f"{kind.__module__}.{kind.__qualname__}"


def dead_letter_headers(
    failure: Failure, *, app: str, group: str, source_timestamp: int, now_ms: int | None = None
) -> list[tuple[str, bytes]]:
    """The ``__streamkit.error.*`` headers for ``failure``."""
    error = failure.error
    kind = type(error)
    trace = "".join(traceback.format_exception(kind, error, error.__traceback__))
    values = {
        "exception.class.name": _qualified(kind),
        "exception.class.hierarchy": ",".join(_qualified(c) for c in kind.__mro__[:-1]),
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


def dead_letter_record(
    failure: Failure,
    topic: str,
    key: bytes | None,
    value: bytes | None,
    headers: Headers | None,
    *,
    app: str,
    group: str,
    source_timestamp: int,
    trace: Headers = (),
    now_ms: int | None = None,
) -> tuple[str, bytes | None, bytes | None, list[tuple[str, bytes | None]]]:
    """The record that carries ``failure``'s input to ``topic`` (a DLQ or parked topic):
    the original key, value and headers (without retry bookkeeping), the error headers,
    then ``trace`` (headers middleware added to the input's outputs)."""
    original = [(k, v) for k, v in (headers or ()) if not k.startswith(RETRY_BOOKKEEPING)]
    extra = dead_letter_headers(
        failure, app=app, group=group, source_timestamp=source_timestamp, now_ms=now_ms
    )
    return topic, key, value, [*original, *extra, *trace]


def redrive_count(headers: Headers | None) -> int:
    """How many times a record was redriven (0: never)."""
    count = 0
    for name, raw in headers or ():
        if name == REDRIVE_COUNT and raw:
            count = int(raw.decode() or 0)
    return count


def redrive_target(headers: Headers | None) -> frozenset[str] | None:
    """The processor a redriven record is meant for (None: every processor)."""
    for name, raw in headers or ():
        if name == REDRIVE_PROCESSOR and raw:
            return frozenset({raw.decode("utf-8", "replace")})
    return None


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
    def error_classes(self) -> list[str]:
        """The exception's class and its base classes, qualified (just the class for a
        dead letter written before the hierarchy was recorded)."""
        hierarchy = self.error.get("exception.class.hierarchy", "")
        return hierarchy.split(",") if hierarchy else [self.error_class]

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
    return DeadLetter(
        topic,
        partition,
        offset,
        key,
        value,
        tuple(original_headers(headers)),
        error,
        redrive_count(headers),
    )
