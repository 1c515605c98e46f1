"""The partition task's hard part without a broker (see ``fake_port``): a produce refused
at once or failed after the fact, an output lost, a blocking retry, a revoke mid-chunk,
and a rewind that caps what later chunks may commit."""

from typing import Any

import orjson

from streamkit import App, RetryPolicy, Settings
from streamkit.records import Record
from streamkit.runtime.pipeline import Pipeline
from streamkit.runtime.task import PartitionTask
from streamkit.topology import Topology
from tests.unit.runtime.fake_port import FakeChunk, FakePort

T0 = 1_767_225_600_000
DLQ = Topology(App("t")).dlq("in")


def _task(fails: list[int] | None = None) -> tuple[PartitionTask, FakePort]:
    """A task of ``in``[0] whose processor doubles ``n``, raising for each ``n`` in
    ``fails`` (removed as it fails: a retry then succeeds)."""
    app = App("t", dead_letters=True)
    app.topic("in", partitions=1)
    app.topic("out", partitions=1)
    failing = fails if fails is not None else []

    @app.processor(input="in", output="out", retries=RetryPolicy(attempts=3, backoff=1, jitter=0))
    def double(event: dict[str, Any]) -> dict[str, Any]:
        if event["n"] in failing:
            failing.remove(event["n"])
            raise ConnectionError("the service is down")
        return {"n": event["n"] * 2}

    port = FakePort()
    return PartitionTask(("in", 0), Pipeline(app, Settings.from_env({})), port), port


def _record(offset: int) -> Record:
    return Record("in", 0, offset, T0 + offset, b"k", orjson.dumps({"n": offset}))


def _handled(task: PartitionTask, chunk: FakeChunk, *offsets: int) -> FakeChunk:
    task.offsets.open(chunk)
    for offset in offsets:
        task.handle(_record(offset), chunk)
    chunk.sealed = True
    return chunk


def test_offsets_become_committable_once_the_outputs_are_acknowledged() -> None:
    task, _ = _task()
    chunk = _handled(task, FakeChunk(0), 0, 1, 2)
    assert chunk.topics() == ["out", "out", "out"]
    task.offsets.advance(task.delivery_failed)
    assert task.offsets.ready is None  # three deliveries wait
    chunk.ack_all()
    task.offsets.advance(task.delivery_failed)
    assert task.offsets.ready == 3


def test_an_output_the_producer_cannot_queue_rewinds_and_holds_at_its_record() -> None:
    task, port = _task()
    chunk = _handled(task, FakeChunk(0, refuse={"out": "full"}), 0)
    task.offsets.advance(task.delivery_failed)
    assert port.paused[("in", 0)].offset == 0
    assert port.counters.rewinds == 1
    assert task.offsets.ready is None  # nothing past the record
    assert "producing to out failed: refused: full" in (task.last_rewind or "")
    assert chunk.produced == []


def test_an_output_too_large_to_queue_dead_letters_its_record_and_moves_on() -> None:
    task, port = _task()
    chunk = _handled(task, FakeChunk(0, refuse={"out": "too large"}), 0)
    assert chunk.topics() == [DLQ]
    chunk.ack_all()
    task.offsets.advance(task.delivery_failed)
    assert task.offsets.ready == 1
    assert port.counters.dead_letters == 1
    assert port.paused == {}


def test_a_delivery_failed_after_the_fact_rewinds_to_its_record() -> None:
    task, port = _task()
    chunk = _handled(task, FakeChunk(0), 0, 1, 2)
    chunk.fail(1)
    chunk.ack_all()
    task.offsets.advance(task.delivery_failed)
    assert port.paused[("in", 0)].offset == 1
    assert task.offsets.ready == 1  # 0 is done; 1 is processed again
    assert port.counters.rewinds == 1


def test_an_output_found_too_large_after_the_fact_dead_letters_its_record() -> None:
    task, port = _task()
    chunk = _handled(task, FakeChunk(0), 0, 1)
    chunk.fail(0, too_large=True)
    chunk.ack_all()
    task.offsets.advance(task.delivery_failed)
    assert chunk.topics() == ["out", "out", DLQ]
    assert task.offsets.ready is None  # the dead letter waits for its acknowledgement
    chunk.ack_all()
    task.offsets.advance(task.delivery_failed)
    assert task.offsets.ready == 2
    assert (port.counters.dead_letters, port.counters.rewinds) == (1, 0)


def test_a_lost_output_processes_the_chunk_again_with_a_report_per_record() -> None:
    task, port = _task()
    chunk = _handled(task, FakeChunk(3), 3, 4, 5)
    chunk.lose(1)
    chunk.ack_all()
    task.offsets.advance(task.delivery_failed)
    assert port.paused[("in", 0)].offset == 3
    assert task.exact_until == 5
    assert task.offsets.ready == 3


def test_a_blocking_retry_holds_the_partition_then_the_record_comes_again() -> None:
    task, port = _task(fails=[0])
    chunk = _handled(task, FakeChunk(0), 0)
    hold = port.paused[("in", 0)]
    assert (hold.offset, hold.until_ms - port.clock) == (0, 1000)
    assert hold.waits == (("double", 1, 1.0),)
    assert task.retrying is not None
    assert task.retrying.attempt == 2
    assert not task.due(port.clock + 999)
    assert task.due(port.clock + 1000)
    task.release()
    assert port.resumed == [("in", 0)]
    again = _handled(task, FakeChunk(0), 0)
    assert again.topics() == ["out"]
    assert task.retrying is None
    chunk.ack_all()
    again.ack_all()
    task.offsets.advance(task.delivery_failed)
    assert task.offsets.ready == 1
    assert port.counters.retries == 1


def test_a_partition_revoked_mid_chunk_ignores_its_failed_deliveries() -> None:
    task, port = _task()
    chunk = _handled(task, FakeChunk(0), 0, 1)
    task.close()  # revoked: the new owner processes from the last commit
    chunk.fail(0)
    chunk.ack_all()
    task.offsets.advance(task.delivery_failed)
    assert port.counters.rewinds == 0
    assert port.paused == {}


def test_a_rewind_caps_the_chunks_after_it_and_what_they_tell_on_acknowledgement() -> None:
    task, port = _task()
    first = _handled(task, FakeChunk(0), 0, 1)
    later = _handled(task, FakeChunk(2), 2, 3)
    told: list[int] = []
    later.acked.append(told.append)
    later.ack_all()
    first.fail(1)
    first.ack_all()
    task.offsets.advance(task.delivery_failed)
    assert port.paused[("in", 0)].offset == 1
    assert task.offsets.ready == 1  # not 4: records 1 to 3 come again
    assert told == [0]
