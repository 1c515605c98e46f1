"""At-least-once offset tracking: an input offset becomes committable only after every
record produced from it (and from everything before it in its partition) is acknowledged.

Records are handled in batches. A batch counts the deliveries it still waits for; when
it is sealed and that count reaches zero, its input offsets are complete. Batches complete
in order: a later batch's offsets never overtake an earlier batch's unacknowledged ones.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from streamkit.runtime.failure import Failure

__all__ = ["Batch", "DeliveryFailure", "LostOutput", "OffsetTracker", "TopicPartitionKey"]

TopicPartitionKey = tuple[str, int]


@dataclass(frozen=True)
class DeliveryFailure:
    """A produce that failed after the fact: the failure, its input message, and whether
    the failed record was a dead letter or retry record (internal) or an output."""

    failure: Failure
    message: Any
    internal: bool = False


@dataclass(frozen=True)
class LostOutput:
    """An output of a batch failed after the fact, acknowledged per batch: which input it
    came from is not known, only the batch's ``inputs`` (the consumed messages)."""

    error: Any
    output_topic: str
    inputs: Sequence[Any]


class Batch:
    """Inputs handled together and the deliveries they wait for."""

    __slots__ = ("failures", "next_offsets", "pending", "sealed")

    def __init__(self) -> None:
        self.pending = 0
        self.sealed = False
        self.next_offsets: dict[TopicPartitionKey, int] = {}
        self.failures: list[DeliveryFailure | LostOutput] = []

    @property
    def done(self) -> bool:
        """Sealed and every delivery acknowledged (or failed)."""
        return self.sealed and self.pending == 0


class OffsetTracker:
    """Batches in flight, and the offsets that are safe to commit."""

    def __init__(self) -> None:
        self._in_flight: deque[Batch] = deque()
        self.ready: dict[TopicPartitionKey, int] = {}

    def begin(self) -> Batch:
        """Start a batch; it must be sealed once all its inputs are handled."""
        batch = Batch()
        self._in_flight.append(batch)
        return batch

    @property
    def in_flight(self) -> int:
        """How many batches still wait for deliveries."""
        return len(self._in_flight)

    def advance(self, on_failure: Callable[[Batch, DeliveryFailure | LostOutput], None]) -> None:
        """Move completed head batches into ``ready``, in order.

        A completed batch with failed deliveries first hands each failure to
        ``on_failure`` (which may add deliveries to the batch, or :meth:`cap` offsets);
        if that raises, the batch stays at the head and none of its offsets (nor any
        later batch's) become ready.
        """
        while self._in_flight and self._in_flight[0].done:
            batch = self._in_flight[0]
            while batch.failures:
                on_failure(batch, batch.failures[0])
                batch.failures.pop(0)
            if not batch.done:  # handling a failure added deliveries to wait for
                return
            self._in_flight.popleft()
            self.ready.update(batch.next_offsets)

    def cap(self, tp: TopicPartitionKey, offset: int) -> None:
        """Nothing of ``tp`` at or after ``offset`` may become committable (a rewind)."""
        for batch in self._in_flight:
            if batch.next_offsets.get(tp, -1) > offset:
                batch.next_offsets[tp] = offset

    def take(
        self, partitions: Iterable[TopicPartitionKey] | None = None
    ) -> dict[TopicPartitionKey, int]:
        """Ready offsets (of ``partitions``, or all) to commit; they stay ready until dropped."""
        if partitions is None:
            return dict(self.ready)
        return {tp: self.ready[tp] for tp in partitions if tp in self.ready}

    def drop(self, partitions: Iterable[TopicPartitionKey]) -> None:
        """Forget partitions that were revoked or lost."""
        for tp in partitions:
            self.ready.pop(tp, None)
            for batch in self._in_flight:
                batch.next_offsets.pop(tp, None)
