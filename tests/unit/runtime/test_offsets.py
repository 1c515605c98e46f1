"""Offset tracking: nothing becomes committable before every delivery it depends on."""

import pytest

from streamkit.errors import KafkaOperationError
from streamkit.failures.failure import Failure, Stage
from streamkit.records import Record
from streamkit.runtime.offsets import Chunk, DeliveryFailure, LostOutput, PartitionOffsets


def _raise(chunk: Chunk, item: DeliveryFailure | LostOutput) -> None:
    assert isinstance(item, DeliveryFailure)
    raise RuntimeError(item.failure.describe())


def _chunk(offsets: PartitionOffsets, first: int, next_offset: int | None) -> Chunk:
    chunk = offsets.open(Chunk(first))
    chunk.next_offset = next_offset
    return chunk


def _failed(offset: int) -> DeliveryFailure:
    failure = Failure(Stage.PRODUCE, "t", 0, offset, KafkaOperationError("timed out"))
    return DeliveryFailure(failure, Record("t", 0, offset, 0, None, b""))


def test_offsets_become_ready_only_after_all_deliveries_and_in_chunk_order() -> None:
    offsets = PartitionOffsets()
    first = _chunk(offsets, 0, 10)
    first.pending = 2
    first.sealed = True
    second = _chunk(offsets, 10, 20)
    second.sealed = True  # nothing to deliver: done at once, but behind `first`
    offsets.advance(_raise)
    assert offsets.ready is None
    first.pending -= 1
    offsets.advance(_raise)
    assert offsets.ready is None
    first.pending -= 1
    offsets.advance(_raise)
    assert offsets.ready == 20
    assert len(offsets) == 0


def test_an_unsealed_chunk_is_never_ready() -> None:
    offsets = PartitionOffsets()
    _chunk(offsets, 0, 3)
    offsets.advance(_raise)
    assert offsets.ready is None


def test_a_chunk_that_settled_no_record_keeps_the_ready_offset() -> None:
    offsets = PartitionOffsets()
    _chunk(offsets, 0, 4).sealed = True
    _chunk(offsets, 4, None).sealed = True  # its only record is held for a retry
    offsets.advance(_raise)
    assert offsets.ready == 4


def test_a_failed_delivery_holds_back_its_chunk_and_later_ones() -> None:
    offsets = PartitionOffsets()
    bad = _chunk(offsets, 3, 4)
    bad.failures.append(_failed(3))
    bad.sealed = True
    _chunk(offsets, 4, 9).sealed = True
    with pytest.raises(RuntimeError, match=r"produce failed for t\[0\]@3"):
        offsets.advance(_raise)
    assert offsets.ready is None
    assert len(offsets) == 2


def test_a_handled_failure_that_adds_a_delivery_waits_for_it_and_a_cap_holds() -> None:
    offsets = PartitionOffsets()
    chunk = _chunk(offsets, 0, 8)
    chunk.failures.append(_failed(5))
    chunk.sealed = True

    def dead_letter(c: Chunk, item: DeliveryFailure | LostOutput) -> None:
        c.pending += 1  # the DLQ write

    offsets.advance(dead_letter)
    assert offsets.ready is None
    chunk.pending -= 1
    offsets.cap(5)
    offsets.advance(dead_letter)
    assert offsets.ready == 5


def test_what_runs_on_acknowledgement_learns_the_records_handled_and_a_rewind_caps_it() -> None:
    # A chunk's acknowledgement tells what was held back how far the partition's records
    # are handled, every output acknowledged: never past a record a rewind goes back to.
    offsets = PartitionOffsets()
    told: list[tuple[str, int]] = []
    rewound = _chunk(offsets, 10, 20)
    rewound.failures.append(_failed(12))
    rewound.sealed = True
    later = _chunk(offsets, 20, 30)
    later.acked.append(lambda through: told.append(("later", through)))
    later.sealed = True
    timed = _chunk(offsets, -1, None)  # what time did, no record
    timed.acked.append(lambda through: told.append(("time", through)))
    timed.sealed = True
    offsets.advance(lambda chunk, item: offsets.cap(10))  # processed again from 10
    assert told == [("later", 9), ("time", 9)]
    assert offsets.ready == 10
