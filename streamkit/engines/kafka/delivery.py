"""Delivery tracking: a chunk's records produced, and the broker's acknowledgements counted.

Outputs are acknowledged per chunk: one delivery callback counts a chunk's outputs, with
no per-record bookkeeping. When an output fails, which input it came from is not known:
the chunk's partition is rewound to the chunk's first record and its records are
processed again with a delivery report each, which names the record whose output fails.
Middleware (counts per topic) gets a report per record always, as do dead-letter and
retry records; RocksDB stores learn their acknowledged changelog offsets from the chunk's
callback.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka import Message as KafkaMessage

from streamkit.errors import KafkaOperationError, OutputTooLargeError
from streamkit.failures.failure import Failure, Stage
from streamkit.records import Headers, Message
from streamkit.runtime import failpoints
from streamkit.runtime.offsets import Chunk, DeliveryFailure, LostOutput
from streamkit.runtime.outcome import OutRecord, Unqueued
from streamkit.runtime.task import PartitionTask

if TYPE_CHECKING:
    from streamkit.engines.kafka.engine import KafkaEngine

__all__ = ["KafkaChunk", "is_too_large", "produce_error"]

_TOO_LARGE = frozenset(
    {KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE, KafkaError.INVALID_RECORD}
)


def is_too_large(error: KafkaError) -> bool:
    """True for the errors that mean "this record can never be written"."""
    return error.code() in _TOO_LARGE


def produce_error(topic: str, error: KafkaError) -> Unqueued:
    """The runtime's view of a record librdkafka would not queue."""
    return Unqueued(topic, error.str(), is_too_large(error))


class KafkaChunk(Chunk):
    """The records of one partition in one batch, producing through the engine's producer."""

    __slots__ = ("_ack", "_engine", "_per_record", "task")

    def __init__(self, task: PartitionTask, first: int, engine: KafkaEngine) -> None:
        super().__init__(first)
        self.task = task
        self._engine = engine
        self._per_record = engine.per_record
        self._ack = self._acker()

    def __call__(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None,
        timestamp: int,
        partition: int = -1,
    ) -> Unqueued | None:
        callback: Any = self._ack
        if self._per_record or self._exact():
            callback = partial(self._delivered, self.current, False)
        if failpoints.ARMED:
            failpoints.reached("process")
        if headers or timestamp <= 0:
            return self._produce(topic, key, value, headers, timestamp, callback, partition)
        # The common cases (outputs, changelog records), with positional arguments: keywords
        # cost produce() 0.3-0.6 µs more a record. The order is produce's C signature:
        # topic, value, key, partition (-1: the partitioner's), callback, its alias
        # on_delivery, timestamp.
        self.pending += 1
        try:
            self._engine.producer.produce(topic, value, key, partition, callback, None, timestamp)
        except (BufferError, KafkaException):
            self.pending -= 1
            return self._produce(topic, key, value, headers, timestamp, callback, partition)
        return None

    def direct(self) -> tuple[Callable[..., None], Any] | None:
        if self._per_record or self.task.exact_until is not None or failpoints.ARMED:
            return None  # a report per record, or a failpoint to pass: through __call__
        return self._engine.producer.produce, self._ack

    def reroute(self, record: OutRecord) -> Unqueued | None:
        topic, key, value, headers = record
        callback = partial(self._delivered, self.current, True)
        return self._produce(topic, key, value, headers, 0, callback)

    def _exact(self) -> bool:
        """Whether the current record's outputs get a delivery report each (its partition
        is being processed again after a failed output); past the rewound records that
        ends."""
        task = self.task
        last = task.exact_until
        if last is None or self.current is None:
            return False
        if (self.current.offset() or 0) > last:
            task.exact_until = None
            return False
        return True

    def _produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None,
        timestamp: int,
        callback: Any,
        partition: int = -1,
    ) -> Unqueued | None:
        kwargs: dict[str, Any] = {"on_delivery": callback}
        if headers:
            kwargs["headers"] = list(headers)
        if timestamp > 0:
            kwargs["timestamp"] = timestamp
        if partition >= 0:
            kwargs["partition"] = partition
        self.pending += 1
        while True:
            producer = self._engine.producer
            try:
                producer.produce(topic, value, key, **kwargs)
                return None
            except BufferError:
                producer.poll(0.05)
            except KafkaException as exc:
                self.pending -= 1
                return produce_error(topic, exc.args[0])

    def _acker(self) -> Any:
        """The one delivery callback of the chunk's outputs: counts them, and reports the
        chunk's first failed output (enough to rewind it; see the module docstring)."""
        engine = self._engine
        reported = False
        task = self.task
        checkpoints = engine.checkpoints

        def ack(err: KafkaError | None, out: KafkaMessage) -> None:
            nonlocal reported
            self.pending -= 1
            if err is None:
                engine.produced += 1
                if checkpoints and task.state is not None:
                    task.state.delivered(out.topic() or "", out.offset() or 0)
            elif not reported:
                reported = True
                self.failures.append(LostOutput(err.str(), out.topic() or ""))

        return ack

    def _delivered(
        self, msg: Message | None, internal: bool, err: KafkaError | None, out: KafkaMessage
    ) -> None:
        self.pending -= 1
        engine = self._engine
        if err is None:
            engine.produced += 1
            name = out.topic() or ""
            if engine.count_topics:
                engine.produced_by_topic[name] = engine.produced_by_topic.get(name, 0) + 1
            state = self.task.state
            if state is not None:
                state.delivered(name, out.offset() or 0)
            return
        if msg is None:  # an output of time (a window closed, a timer fired)
            self.failures.append(LostOutput(err.str(), out.topic() or ""))
            return
        kind = OutputTooLargeError if is_too_large(err) else KafkaOperationError
        failure = Failure(
            Stage.PRODUCE,
            msg.topic() or "",
            msg.partition() or 0,
            msg.offset() or 0,
            kind(err.str()),
            output_topic=out.topic() or "",
        )
        self.failures.append(DeliveryFailure(failure, msg, internal))
