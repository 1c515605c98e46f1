"""A fake engine for unit tests of :class:`~streamkit.runtime.task.PartitionTask`: a
:class:`FakePort` (a clock, the holds and resumes it was asked for) and a
:class:`FakeChunk` whose produces wait until the test acknowledges them, fails them after
the fact, loses them, or refuses them at once. What needs a broker to provoke (a full
queue, a record too large, a delivery report with an error, a revoke mid-chunk) takes
milliseconds here."""

import logging

from streamkit.errors import KafkaOperationError, OutputTooLargeError
from streamkit.failures.failure import Failure, Stage
from streamkit.records import TP, Headers, Message
from streamkit.runtime.offsets import Chunk, DeliveryFailure, LostOutput
from streamkit.runtime.outcome import OutRecord, Unqueued
from streamkit.runtime.port import Counters, Hold
from streamkit.runtime.task import PartitionTask
from streamkit.state.partition import PartitionState


class FakePort:
    """The engine side of a task: a clock the test moves, and what the task asked."""

    def __init__(self) -> None:
        self.log = logging.getLogger("streamkit.fake")
        self.counters = Counters()
        self.clock = 1_767_225_600_000
        self.paused: dict[TP, Hold] = {}
        self.resumed: list[TP] = []

    def now_ms(self) -> int:
        return self.clock

    def pause(self, task: PartitionTask, hold: Hold) -> None:
        self.paused[task.tp] = hold

    def resume(self, task: PartitionTask) -> None:
        self.paused.pop(task.tp, None)
        self.resumed.append(task.tp)

    def caught_up(self, task: PartitionTask) -> bool:
        return True

    def read_ends(self, tps: list[TP]) -> dict[TP, int]:
        return {}

    def read_to(self, ends: dict[TP, int]) -> bool:
        return True

    def feeder_partitions(self, topics: frozenset[str]) -> list[TP]:
        return []

    def state_of(self, tp: TP) -> PartitionState | None:
        return None


class FakeChunk(Chunk):
    """A chunk whose deliveries wait for the test. ``refuse`` maps a topic to how its
    produce is refused at once: ``"full"`` (the queue) or ``"too large"``."""

    __slots__ = ("produced", "refuse", "sources")

    def __init__(self, first: int, refuse: dict[str, str] | None = None) -> None:
        super().__init__(first)
        self.refuse = refuse or {}
        self.produced: list[OutRecord] = []
        self.sources: list[Message | None] = []
        """The input each produced record came from (for delivery reports)."""

    def __call__(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None,
        timestamp: int,
        partition: int = -1,
    ) -> Unqueued | None:
        return self.reroute((topic, key, value, list(headers or ())))

    def reroute(self, record: OutRecord) -> Unqueued | None:
        refused = self.refuse.get(record[0])
        if refused is not None:
            return Unqueued(record[0], f"refused: {refused}", too_large=refused == "too large")
        self.pending += 1
        self.produced.append(record)
        self.sources.append(self.current)
        return None

    def topics(self) -> list[str]:
        """Where each produced record went, in order."""
        return [record[0] for record in self.produced]

    def ack_all(self) -> None:
        """The broker acknowledges every delivery."""
        self.pending = 0

    def fail(self, index: int, *, too_large: bool = False) -> None:
        """The delivery report of produced record ``index`` says it failed: the record is
        too large for its topic, or (default) the broker did not take it in time."""
        topic = self.produced[index][0]
        source = self.sources[index]
        assert source is not None
        error: Exception = (
            OutputTooLargeError("Broker: Message size too large")
            if too_large
            else KafkaOperationError("Local: Message timed out")
        )
        failure = Failure(
            Stage.PRODUCE,
            source.topic() or "",
            source.partition() or 0,
            source.offset() or 0,
            error,
            output_topic=topic,
        )
        self.failures.append(DeliveryFailure(failure, source))
        self.pending -= 1

    def lose(self, index: int) -> None:
        """Produced record ``index`` failed, and which input it came from is not known
        (an output acknowledged per chunk)."""
        self.failures.append(LostOutput("Local: Message timed out", self.produced[index][0]))
        self.pending -= 1
