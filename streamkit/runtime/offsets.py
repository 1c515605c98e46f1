"""At-least-once offset tracking per partition: an input offset becomes committable only
after every record produced from it (and from everything before it in its partition) is
acknowledged.

A partition's records are handled in chunks: the records of one partition taken in one
batch (or, with concurrency, one record). A chunk counts the deliveries it still waits
for; once it is sealed and that count reaches zero, it is done. Chunks complete in order:
the committable offset is the one after the last record of the last chunk in an unbroken
run of done chunks, so nothing is ever committed past an incomplete record.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from streamkit.failures.failure import Failure
from streamkit.records import Headers, Message
from streamkit.runtime.outcome import OutRecord, Unqueued

__all__ = ["Chunk", "DeliveryFailure", "LostOutput", "PartitionOffsets"]


@dataclass(frozen=True)
class DeliveryFailure:
    """A produce that failed after the fact: the failure, its input record, and whether
    the failed record was a dead letter or retry record (internal) or an output."""

    failure: Failure
    message: Message
    internal: bool = False


@dataclass(frozen=True)
class LostOutput:
    """An output of a chunk failed after the fact, acknowledged per chunk: which input it
    came from is not known, only that it was one of the chunk's records."""

    error: str
    output_topic: str


class Chunk:
    """Records of one partition handled together, and the deliveries they wait for.

    An engine subclasses it as the sink of those records: calling the chunk produces one
    output (see :class:`~streamkit.runtime.outcome.Sink`), :meth:`reroute` one dead-letter
    or retry record. ``current`` is the record being handled, ``next_offset`` the offset
    after the last record whose handling is settled (None: none yet). A chunk with
    ``first`` -1 holds no record: what time did (windows closed, timers fired).
    """

    __slots__ = (
        "acked",
        "current",
        "failures",
        "first",
        "last",
        "next_offset",
        "pending",
        "sealed",
        "undo",
    )

    def __init__(self, first: int) -> None:
        self.first = first
        self.last = first
        self.next_offset: int | None = None
        self.pending = 0
        self.sealed = False
        self.current: Message | None = None
        self.failures: list[DeliveryFailure | LostOutput] = []
        self.undo: list[Callable[[], None]] = []
        """What puts back the windows closed into this chunk, if its outputs fail."""
        self.acked: list[Callable[[int], None]] = []
        """What runs once every delivery of the chunk is acknowledged, none failed: the
        changelog writes of what time did, held until its outputs are safe. Each is given
        the offset through which every record of the partition was then handled and
        acknowledged (-1: none known yet), which a rewind never lets pass a record to be
        processed again."""

    @property
    def done(self) -> bool:
        """Sealed and every delivery acknowledged (or failed)."""
        return self.sealed and self.pending == 0

    def __call__(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None,
        timestamp: int,
        partition: int = -1,
    ) -> Unqueued | None:
        raise NotImplementedError

    def reroute(self, record: OutRecord) -> Unqueued | None:
        """Produce a dead-letter or retry record of the current input."""
        raise NotImplementedError

    def target(self, topic: str) -> str:
        """Where a record meant for ``topic`` is written (a shadow replay redirects it),
        as logs should name it."""
        return topic

    def direct(self) -> tuple[Callable[..., None], Any] | None:
        """The engine's own produce for plain outputs (no headers, a timestamp), with the
        delivery callback it takes, or None: produce through the chunk (``__call__``).

        Called as ``produce(topic, value, key, -1, callback, None, timestamp)`` (the
        positional order of confluent-kafka's ``Producer.produce``); the caller adds 1 to
        :attr:`pending` first, and on any exception (nothing queued) takes it back and
        produces through the chunk, which then says what went wrong. Asked once per run
        of records (see :mod:`streamkit.runtime._fast`)."""
        return None


class PartitionOffsets:
    """A partition's chunks in flight, and the offset that is safe to commit."""

    def __init__(self) -> None:
        self._chunks: deque[Chunk] = deque()
        self.ready: int | None = None

    def open(self, chunk: Chunk) -> Chunk:
        """Track ``chunk``; it must be sealed once all its records are handled."""
        self._chunks.append(chunk)
        return chunk

    def __iter__(self) -> Iterator[Chunk]:
        return iter(self._chunks)

    def __len__(self) -> int:
        return len(self._chunks)

    def advance(self, on_failure: Callable[[Chunk, DeliveryFailure | LostOutput], None]) -> None:
        """Move past done head chunks, in order, making their offsets ready.

        A done chunk with failed deliveries first hands each failure to ``on_failure``
        (which may add deliveries to the chunk, or :meth:`cap` offsets); if that raises,
        the chunk stays at the head and neither its offset nor a later one becomes ready.
        """
        chunks = self._chunks
        while chunks and chunks[0].done:
            chunk = chunks[0]
            if chunk.failures:
                chunk.acked.clear()  # what was held back stays so: its outputs failed
            while chunk.failures:
                on_failure(chunk, chunk.failures[0])
                chunk.failures.pop(0)
            if not chunk.done:  # handling a failure added deliveries to wait for
                return
            chunks.popleft()
            if chunk.next_offset is not None:
                self.ready = chunk.next_offset
            through = -1 if self.ready is None else self.ready - 1
            for acked in chunk.acked:
                acked(through)
            chunk.acked.clear()

    def waiting_before(self, offset: int) -> bool:
        """Whether a chunk of records before ``offset`` still waits for deliveries (what
        was produced from them is not all acknowledged yet)."""
        return any(0 <= chunk.first < offset for chunk in self._chunks)

    def cap(self, offset: int) -> None:
        """Nothing at or after ``offset`` may become committable (a rewind)."""
        for chunk in self._chunks:
            if chunk.next_offset is not None and chunk.next_offset > offset:
                chunk.next_offset = offset

    def __repr__(self) -> str:
        return f"PartitionOffsets(ready={self.ready}, chunks={len(self._chunks)})"
