"""Offset tracking: nothing becomes committable before every delivery it depends on."""

import pytest

from streamkit.errors import KafkaOperationError
from streamkit.runtime.failure import Failure, Stage
from streamkit.runtime.offsets import Batch, DeliveryFailure, OffsetTracker


def _raise(batch: Batch, item: DeliveryFailure) -> None:
    raise RuntimeError(item.failure.describe())


def test_offsets_become_ready_only_after_all_deliveries_and_in_batch_order() -> None:
    tracker = OffsetTracker()
    first = tracker.begin()
    first.next_offsets[("t", 0)] = 10
    first.pending = 2
    first.sealed = True
    second = tracker.begin()
    second.next_offsets[("t", 0)] = 20
    second.next_offsets[("t", 1)] = 5
    second.sealed = True  # nothing to deliver: done at once, but behind `first`
    tracker.advance(_raise)
    assert tracker.take() == {}
    first.pending -= 1
    tracker.advance(_raise)
    assert tracker.take() == {}
    first.pending -= 1
    tracker.advance(_raise)
    assert tracker.take() == {("t", 0): 20, ("t", 1): 5}
    assert tracker.in_flight == 0


def test_unsealed_batch_is_never_ready() -> None:
    tracker = OffsetTracker()
    batch = tracker.begin()
    batch.next_offsets[("t", 0)] = 3
    tracker.advance(_raise)
    assert tracker.take() == {}


def test_failed_delivery_holds_back_its_batch_and_later_ones() -> None:
    tracker = OffsetTracker()
    bad = tracker.begin()
    bad.next_offsets[("t", 0)] = 4
    failure = Failure(Stage.PRODUCE, "t", 0, 3, KafkaOperationError("timed out"))
    bad.failures.append(DeliveryFailure(failure, None))
    bad.sealed = True
    later = tracker.begin()
    later.next_offsets[("t", 0)] = 9
    later.sealed = True
    with pytest.raises(RuntimeError, match=r"produce failed for t\[0\]@3"):
        tracker.advance(_raise)
    assert tracker.take() == {}
    assert tracker.in_flight == 2


def test_revoked_partitions_are_forgotten() -> None:
    tracker = OffsetTracker()
    batch = tracker.begin()
    batch.next_offsets.update({("t", 0): 4, ("t", 1): 7})
    batch.sealed = True
    tracker.advance(_raise)
    tracker.drop([("t", 0)])
    assert tracker.take() == {("t", 1): 7}
    assert tracker.take([("t", 0)]) == {}


def test_a_handled_failure_that_adds_a_delivery_waits_for_it_and_a_cap_holds() -> None:
    tracker = OffsetTracker()
    batch = tracker.begin()
    batch.next_offsets[("t", 0)] = 8
    failure = Failure(Stage.PRODUCE, "t", 0, 5, KafkaOperationError("too large"))
    batch.failures.append(DeliveryFailure(failure, None))
    batch.sealed = True

    def dead_letter(b: Batch, item: DeliveryFailure) -> None:
        b.pending += 1  # the DLQ write

    tracker.advance(dead_letter)
    assert tracker.take() == {}
    batch.pending -= 1
    tracker.cap(("t", 0), 5)
    tracker.advance(dead_letter)
    assert tracker.take() == {("t", 0): 5}
