"""TestDriver: unit-test a processor module in milliseconds, contracts enforced.

::

    driver = TestDriver(app)
    driver.send("orders.placed", {"order_id": "o-1", ...}, key="c-1")
    assert driver.values("orders.validated") == [...]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streamkit.app import App
from streamkit.engines.memory import MemoryEngine, StoredRecord
from streamkit.failures.dead_letter import DeadLetter, read_dead_letter
from streamkit.runtime.failure import FailureHandler
from streamkit.settings import Settings

__all__ = ["DriverRecord", "TestDriver"]


@dataclass(frozen=True)
class DriverRecord:
    """A record decoded with its topic's contract."""

    topic: str
    partition: int
    offset: int
    key: Any
    value: Any
    headers: dict[str, bytes | None]


class TestDriver:
    """Run an :class:`App` without Kafka: pipe events in, read outputs per topic."""

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
    ) -> DriverRecord:
        """Encode ``value`` with ``topic``'s contract, append it, run the processors."""
        serdes = self.engine.pipeline.serdes[topic]
        raw_key = None if key is None else serdes.key.encode(key)
        raw_value = None if value is None else serdes.value.encode(value)
        raw_headers = [
            (k, v.encode() if isinstance(v, str) else v) for k, v in (headers or {}).items()
        ]
        stored = self.engine.append(topic, raw_key, raw_value, raw_headers, timestamp)
        return self._decode(stored)

    def send_raw(self, topic: str, value: bytes | None, *, key: bytes | None = None) -> None:
        """Append bytes as they are (to test what malformed input does)."""
        self.engine.append(topic, key, value)

    def records(self, topic: str) -> list[DriverRecord]:
        """Every record of ``topic``, decoded."""
        return [self._decode(r) for r in self.engine.records(topic)]

    def values(self, topic: str) -> list[Any]:
        """The decoded values of ``topic``'s records."""
        return [r.value for r in self.records(topic)]

    @property
    def filtered(self) -> list[DriverRecord]:
        """Input records that some processor filtered out (returned None for)."""
        return [self._decode(r) for _, r in self.engine.filtered]

    def dead_letters(self, input_topic: str | None = None) -> list[DeadLetter]:
        """Records dead-lettered (or parked) so far, of one input topic or all."""
        found = []
        for topic in self.app.failure_topics():
            if not topic.name.endswith(("-dlq", "-parked")):
                continue
            for r in self.engine.records(topic.name):
                letter = read_dead_letter(r.topic, r.partition, r.offset, r.key, r.value, r.headers)
                if input_topic is None or letter.source_topic == input_topic:
                    found.append(letter)
        return found

    def state(self, store: str, key: Any) -> Any:
        """The current state of ``key`` in aggregate store ``store`` (None: none)."""
        manager = self.engine.pipeline.state
        if manager is None:
            raise KeyError(f"app {self.app.name} has no aggregates")
        found = manager.get(store, str(key))
        return None if found is None else found[1].state

    @property
    def waits(self) -> list[tuple[str, int, float]]:
        """(processor, failed attempt, delay in seconds) of every retry; nothing sleeps."""
        return list(self.engine.waits)

    def _decode(self, record: StoredRecord) -> DriverRecord:
        serdes = self.engine.pipeline.serdes.get(record.topic)
        if serdes is None:  # a failure topic: raw bytes
            return DriverRecord(
                record.topic, record.partition, record.offset, record.key, record.value,
                dict(record.headers),
            )  # fmt: skip
        return DriverRecord(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=None if record.key is None else serdes.key.decode(record.key),
            value=None if record.value is None else serdes.value.decode(record.value),
            headers=dict(record.headers),
        )
