"""The fast path over a run of records: plain outputs go to the chunk's direct produce,
a record with an outcome ends the run and is settled, a tombstone or another partition
ends it, and a record the producer would not queue goes through the chunk instead."""

from pathlib import Path
from typing import Any

from streamkit import App
from streamkit.contracts import AvroSerde, SchemaRepository
from streamkit.engines.memory import MemoryEngine, _MemoryChunk
from streamkit.records import Record

SCHEMAS = Path(__file__).resolve().parents[2] / "integration" / "apps" / "schemas"
SERDE = AvroSerde(SchemaRepository.from_directory(SCHEMAS), "Reading")


class _DirectChunk(_MemoryChunk):
    """A chunk whose direct produce records its calls; the ``refuse``-th one raises."""

    def __init__(self, engine: MemoryEngine, first: int, refuse: int = -1) -> None:
        super().__init__(engine, first)
        self.calls: list[tuple[Any, ...]] = []
        self.refuse = refuse

    def direct(self) -> tuple[Any, Any]:
        return self._produce, "ack"

    def _produce(self, *args: Any) -> None:
        if len(self.calls) == self.refuse:
            self.refuse = -1
            raise BufferError("queue full")
        self.calls.append(args)


def _engine() -> MemoryEngine:
    app = App("runs", schemas=SCHEMAS, dead_letters=True)
    app.topic("readings", value="Reading", partitions=2)
    app.topic("doubled", value="Reading", partitions=2)

    @app.processor(input="readings", output="doubled")
    def double(reading: dict[str, Any]) -> dict[str, Any] | None:
        if reading["kind"] == "skip":
            return None
        return {**reading, "value": reading["value"] * 2}

    return MemoryEngine(app)


def _record(partition: int, offset: int, kind: str | None) -> Record:
    value = (
        None
        if kind is None
        else b"\xc3\x01garbage"
        if kind == "bad"
        else SERDE.encode({"id": offset, "value": 1.5, "kind": kind})
    )
    return Record("readings", partition, offset, 1_000 + offset, b"k", value)


def test_a_run_ends_at_outcomes_tombstones_and_other_partitions() -> None:
    engine = _engine()
    task = engine._task(("readings", 0))
    messages = [
        _record(0, 0, "a"),
        _record(0, 1, "skip"),
        _record(0, 2, "bad"),
        _record(0, 3, "b"),
        _record(0, 4, None),
        _record(0, 5, "c"),
        _record(1, 0, "d"),
    ]
    chunk = _DirectChunk(engine, 0)
    assert task.handle_run(messages, 0, chunk) == 3  # the malformed record ends the run
    assert [call[0] for call in chunk.calls] == ["doubled"]  # 1 filtered, 1 dead-lettered
    assert chunk.calls[0][3:] == (-1, "ack", None, 1_000)
    assert SERDE.decode(chunk.calls[0][1])["value"] == 3.0
    assert [r.offset() for r in engine.records("runs-readings-dlq")] == [0]
    assert (chunk.next_offset, chunk.pending) == (3, 1)
    assert task.handle_run(messages, 3, chunk) == 4  # up to the tombstone
    assert task.handle_run(messages, 4, chunk) == 5  # the tombstone, record by record
    assert task.handle_run(messages, 5, chunk) == 6  # up to the other partition
    assert (chunk.next_offset, chunk.last, chunk.pending) == (6, 5, 3)
    assert [SERDE.decode(c[1])["id"] for c in chunk.calls] == [0, 3, 5]


def test_an_output_the_producer_does_not_queue_goes_through_the_chunk() -> None:
    engine = _engine()
    task = engine._task(("readings", 1))
    chunk = _DirectChunk(engine, 0, refuse=1)
    messages = [_record(1, n, "a") for n in range(3)]
    assert task.handle_run(messages, 0, chunk) == 3
    assert [SERDE.decode(c[1])["id"] for c in chunk.calls] == [0, 2]
    assert [SERDE.decode(r.value() or b"")["id"] for r in engine.records("doubled")] == [1]
    assert (chunk.pending, chunk.next_offset) == (2, 3)
