"""What one record did, and the sink its records go to."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from streamkit.failures.failure import Failure
from streamkit.records import Headers

__all__ = ["Late", "OutRecord", "Outcome", "Sink", "Unqueued"]

OutRecord = tuple[str, bytes | None, bytes | None, list[tuple[str, bytes | None]]]
"""A record to produce: topic, key, value, headers."""


@dataclass(frozen=True, slots=True)
class Unqueued:
    """A record the engine could not even queue for ``topic``.

    Attributes:
        topic: where it was going.
        reason: the client's words.
        too_large: the record can never be written (larger than the topic accepts).
    """

    topic: str
    reason: str
    too_large: bool = False


class Sink(Protocol):
    """Where the records derived from an input go: the engine's producer for them."""

    def __call__(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None,
        timestamp: int,
        partition: int = -1,
    ) -> Unqueued | None:
        """Produce one output; ``partition`` -1 lets the partitioner choose. Returns the
        error when the record could not be queued (nothing raised)."""
        ...


@dataclass(frozen=True, slots=True)
class Late:
    """The record was too late for every window of ``store`` it belongs to.

    Attributes:
        store: the window store.
        window_end: the end of the (last) window it was too late for.
        watermark: the stream time minus the grace, when it came.
        event_time: its event time.
    """

    store: str
    window_end: int
    watermark: int
    event_time: int


@dataclass
class Outcome:
    """What one record did: counts, and the failures the task must act on.

    Attributes:
        emitted: output records handed to the sink.
        filtered: processors that returned nothing.
        done: processors that finished (their outputs are in the sink).
        retry: processors to retry on this record (blocking), with the delay in seconds.
        forward: (failure, retry topic, delay) for processors with retry topics.
        dead: failures whose record goes to the dead-letter topic.
        skipped: failures the handler chose to skip.
        deduplicated: processors skipped because the event id was seen.
        extra_headers: headers middleware adds to the record's outputs and dead letters.
        produce_errors: outputs the sink could not queue.
        late: window stores the record was too late for (it goes to their late topics).
        reroutes: records to produce with a delivery report each (a timer's dead letter).
        undo: what puts back the windows closed with the outcome, when its outputs cannot
            be written (they close again later).
        acked: what runs once its outputs are acknowledged (the changelog writes of
            what time did, held back until then).
        time_due: the record moved the stream time past a window's close.
        steps: workflow calls it made: (workflow, step, outcome, seconds).
    """

    emitted: int = 0
    filtered: int = 0
    done: list[str] = field(default_factory=list)
    retry: dict[str, float] = field(default_factory=dict)
    forward: list[tuple[Failure, str, float]] = field(default_factory=list)
    dead: list[Failure] = field(default_factory=list)
    skipped: int = 0
    deduplicated: int = 0
    extra_headers: list[tuple[str, bytes]] = field(default_factory=list)
    produce_errors: list[Unqueued] = field(default_factory=list)
    late: list[Late] = field(default_factory=list)
    reroutes: list[OutRecord] = field(default_factory=list)
    undo: list[Callable[[], None]] = field(default_factory=list)
    acked: list[Callable[[int], None]] = field(default_factory=list)
    time_due: bool = False
    steps: list[tuple[str, str, str, float]] = field(default_factory=list)
