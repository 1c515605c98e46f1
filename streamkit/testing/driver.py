"""TestDriver: unit-test a processor module in milliseconds, contracts enforced.

::

    driver = TestDriver(app)
    driver.send("orders.placed", {"order_id": "o-1", ...}, key="c-1")
    assert driver.values("orders.validated") == [...]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamkit.app import App
from streamkit.engines.memory import MemoryEngine
from streamkit.failures.dead_letter import DeadLetter, read_dead_letter
from streamkit.failures.failure import FailureHandler
from streamkit.records import Event, Record
from streamkit.settings import Settings
from streamkit.state.window_store import window_store
from streamkit.topology import Role

__all__ = ["DriverRecord", "TestDriver"]

DriverRecord = Event
"""A record decoded with its topic's contract (see :class:`streamkit.records.Event`)."""


class TestDriver:
    """Run an :class:`App` without Kafka: pipe events in, read outputs per topic.

    It runs the app's partitions through the same per-partition tasks as a Kafka worker,
    in memory, on a virtual clock: retries and retry topics move the clock instead of
    sleeping.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        app: App,
        *,
        settings: Settings | None = None,
        failure_handler: FailureHandler | None = None,
    ) -> None:
        self.engine = MemoryEngine(
            app, settings or Settings.from_env({}), failure_handler=failure_handler
        )
        self.app = app

    def send(
        self,
        topic: str,
        value: Any,
        *,
        key: Any = None,
        headers: Mapping[str, str | bytes] | None = None,
        timestamp: int | None = None,
    ) -> Event:
        """Encode ``value`` with ``topic``'s contract, append it, run everything downstream.

        Returns the appended record, decoded. Raises the error of a contract violation, or
        :class:`~streamkit.errors.ProcessingFailedError` when the app stops at a failure.
        """
        serdes = self.engine.pipeline.serdes[topic]
        raw_key = None if key is None else serdes.key.encode(key)
        raw_value = None if value is None else serdes.value.encode(value)
        raw_headers = [
            (k, v.encode() if isinstance(v, str) else v) for k, v in (headers or {}).items()
        ]
        stored = self.engine.append(topic, raw_key, raw_value, raw_headers, timestamp)
        return self._decode(stored)

    def send_raw(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        """Append bytes as they are (to test what malformed input does)."""
        self.engine.append(topic, key, value, headers or [])

    def advance(self, seconds: float, *, clock: str = "both") -> None:
        """Let ``seconds`` pass: the wall clock and the event time (as if records that
        much later had come), or only one with ``clock="wall"`` or ``"event"``. Windows
        close and timers fire as they would on a broker, in milliseconds, nothing sleeps.
        """
        if clock not in {"both", "wall", "event"}:
            raise ValueError(f"clock {clock!r}: expected both, wall or event")
        self.engine.advance(seconds, wall=clock != "event", event=clock != "wall")

    @property
    def now(self) -> int:
        """The driver's wall clock, in milliseconds (it starts at the real time)."""
        return self.engine.now_ms()

    def windows(self, store: str, key: Any) -> list[dict[str, Any]]:
        """The windows of ``key`` in window store ``store`` held now (open, or closed by
        idleness and kept until the stream time passes them): start, end, value,
        closed."""
        found: list[dict[str, Any]] = []
        spec = next((w for w in self.app.windows if w.store == store), None)
        if spec is None:
            raise KeyError(f"app {self.app.name} has no window store {store!r}")
        for task in self.engine.tasks.values():
            if task.state is not None and store in task.state.specs:
                found += window_store(task.state, spec, self.now).windows(str(key))
        return sorted(found, key=lambda w: (w["start"], w["end"]))

    def redeliver(self, topic: str, partition: int, offset: int) -> None:
        """Deliver ``topic``'s partition again from ``offset``, as a worker restarted after
        a crash would: to test that processing is idempotent under at-least-once."""
        self.engine.redeliver((topic, partition), offset)

    def records(self, topic: str) -> list[Event]:
        """Every record of ``topic``, in the order written, decoded with its contract
        (records of a dead-letter, retry or changelog topic keep raw bytes)."""
        return [self._decode(r) for r in self.engine.records(topic)]

    def values(self, topic: str) -> list[Any]:
        """The decoded values of ``topic``'s records."""
        return [r.value for r in self.records(topic)]

    @property
    def filtered(self) -> list[Event]:
        """Input records that some processor filtered out (returned None for)."""
        return [self._decode(r) for r in self.engine.filtered]

    def dead_letters(self, input_topic: str | None = None) -> list[DeadLetter]:
        """Records dead-lettered (or parked) so far, of one input topic or all: each a
        :class:`~streamkit.failures.DeadLetter` with the original key, value and headers
        and the ``error`` headers (class, message, stage, attempts, source...)."""
        found = []
        for name, roles in self.engine.topology.roles().items():
            if Role.DEAD_LETTERS not in roles and Role.PARKED not in roles:
                continue
            for r in self.engine.records(name):
                letter = read_dead_letter(
                    r.topic(), r.partition(), r.offset(), r.key(), r.value(), r.headers()
                )
                if input_topic is None or letter.source_topic == input_topic:
                    found.append(letter)
        return found

    def state(self, store: str, key: Any) -> Any:
        """The current state of ``key`` in store ``store`` (None: none)."""
        if store not in {s.name for s in self.engine.topology.stores()}:
            raise KeyError(f"app {self.app.name} has no store {store!r}")
        now = self.engine.now_ms()
        for task in self.engine.tasks.values():
            if task.state is not None and store in task.state.specs:
                entry = task.state.get(store, str(key), now)
                if entry is not None:
                    return entry.state
        return None

    @property
    def waits(self) -> list[tuple[str, int, float]]:
        """(processor, failed attempt, delay in seconds) of every retry, blocking or
        through a retry topic; nothing sleeps."""
        return list(self.engine.waits)

    def _decode(self, record: Record) -> Event:
        serdes = self.engine.pipeline.serdes.get(record.topic())
        key, value = record.key(), record.value()
        if serdes is not None:  # a declared topic, else a failure or state topic: raw bytes
            key = None if key is None else serdes.key.decode(key)
            value = None if value is None else serdes.value.decode(value)
        return Event(
            topic=record.topic(),
            partition=record.partition(),
            offset=record.offset(),
            key=key,
            value=value,
            headers=dict(record.headers()),
            timestamp=record.timestamp()[1],
        )
