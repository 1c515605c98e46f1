"""Retry-topic records: a failed input on its way to another attempt, and back.

A processor with ``retry_topics=["1s", "10s"]`` sends a failed record to its next delay
topic with its original key, value and headers, plus ``__streamkit.retry.*`` headers that
say where it came from, which processor failed, the next attempt and when it is due. Read
back, the record is processed at its origin's coordinates, by that processor only.
"""

from __future__ import annotations

from dataclasses import dataclass

from streamkit.failures.dead_letter import RETRY_BOOKKEEPING
from streamkit.failures.failure import Failure
from streamkit.records import Headers

__all__ = ["RetryOrigin", "retry_origin", "retry_record"]

_ERROR_LIMIT = 500


@dataclass(frozen=True)
class RetryOrigin:
    """Where a record read from a retry topic first came from, and what to do with it."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    processor: str
    attempt: int
    due_ms: int
    headers: list[tuple[str, bytes | None]]


def retry_record(
    failure: Failure,
    retry_topic: str,
    due_ms: int,
    key: bytes | None,
    value: bytes | None,
    headers: Headers | None,
    source_timestamp: int,
    trace: Headers = (),
) -> tuple[str, bytes | None, bytes | None, list[tuple[str, bytes | None]]]:
    """The record that carries ``failure``'s input to ``retry_topic``, due at ``due_ms``."""
    original = [(k, v) for k, v in (headers or ()) if not k.startswith(RETRY_BOOKKEEPING)]
    error = f"{type(failure.error).__name__}: {failure.error}"[:_ERROR_LIMIT]
    extra = [
        ("processor", failure.processor),
        ("attempt", str(failure.attempt + 1)),
        ("due", str(due_ms)),
        ("topic", failure.topic),
        ("partition", str(failure.partition)),
        ("offset", str(failure.offset)),
        ("timestamp", str(source_timestamp)),
        ("error", error),
    ]
    bookkeeping = [(RETRY_BOOKKEEPING + k, v.encode()) for k, v in extra]
    return retry_topic, key, value, [*original, *bookkeeping, *trace]


def retry_origin(headers: Headers | None) -> RetryOrigin | None:
    """For a record of a retry topic: where it came from and when it is due (None: it is
    not a streamkit retry record)."""
    if not headers:
        return None
    found = {
        k[len(RETRY_BOOKKEEPING) :]: (v or b"").decode()
        for k, v in headers
        if k.startswith(RETRY_BOOKKEEPING)
    }
    try:
        return RetryOrigin(
            topic=found["topic"],
            partition=int(found["partition"]),
            offset=int(found["offset"]),
            timestamp=int(found["timestamp"]),
            processor=found["processor"],
            attempt=int(found["attempt"]),
            due_ms=int(found["due"]),
            headers=[(k, v) for k, v in headers if not k.startswith(RETRY_BOOKKEEPING)],
        )
    except (KeyError, ValueError):
        return None
