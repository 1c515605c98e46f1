"""Produce and read an app's events from Python, checked against its contracts.

For scripts, demos and integration tests: the app's topics and contracts, without writing
Kafka client code::

    from streamkit import AppClient

    with AppClient(app) as client:                       # Settings.from_env()
        client.create_topics()                           # every topic of the app
        client.send("orders.placed", order, key=order["customer_id"])
        client.flush()                                   # every record acknowledged
        for event in client.read("orders.validated"):    # decoded, from the start
            print(event.key, event.value)

In a test, the pytest plugin's ``app_client`` fixture gives one for the test broker.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, Self

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from streamkit.app import App
from streamkit.engines.kafka.clients import BOUNDED_READ, read_until
from streamkit.engines.kafka.offsets import committed_offsets, group_members, offsets_for
from streamkit.errors import ConfigError, KafkaOperationError
from streamkit.ops.admin import TopicSpec, admin_client, create_topics
from streamkit.records import TP, Event, message_headers
from streamkit.runtime.serdes import TopicSerdes, app_serdes
from streamkit.settings import Settings
from streamkit.topology import Topology

__all__ = ["AppClient"]


class AppClient:
    """Send and read ``app``'s events on the cluster of ``settings`` (default: the
    environment's), encoded and decoded with each topic's contract."""

    def __init__(self, app: App, settings: Settings | None = None) -> None:
        self.app = app
        self.settings = settings or Settings.from_env()
        self.topology = Topology(app)
        self.serdes: dict[str, TopicSerdes] = app_serdes(app, self.settings)
        self._config = self.settings.client_config()
        self._admin = admin_client(self._config)
        self._producer: Producer | None = None
        self._failures: list[str] = []
        self._acked = 0

    # -- topics ---------------------------------------------------------------------------
    def create_topics(self, timeout: float = 60.0) -> dict[str, str]:
        """Create every topic of the app (declared, dead-letter, retry, changelog) that is
        missing; ``{name: "created" | "exists"}``. Returns once every partition of them
        answers (a new topic's leaders take a moment to be elected)."""
        topics = self.topology.topics()
        specs = [
            TopicSpec(t.name, t.partitions, t.replication_factor, t.config) for t in topics.values()
        ]
        outcome = create_topics(self._admin, specs, timeout=timeout)
        self.end_offsets(*topics, timeout=timeout)
        return outcome

    def end_offsets(self, *topics: str, timeout: float = 30.0) -> dict[TP, int]:
        """The end offset of every partition of ``topics`` (of every declared topic when
        none is named), asked again while leaders are still being elected."""
        names = list(topics or self.app.topics)
        deadline = time.monotonic() + timeout
        while True:
            try:
                metadata = self._admin.list_topics(timeout=max(1.0, deadline - time.monotonic()))
                parts = [
                    (name, p) for name in names for p in sorted(metadata.topics[name].partitions)
                ]
                return offsets_for(self._admin, parts, "latest")
            except (KafkaOperationError, KafkaException, KeyError) as exc:
                if time.monotonic() > deadline:
                    raise KafkaOperationError(
                        f"the partitions of {', '.join(names)} did not answer within "
                        f"{timeout:.0f}s: {exc}"
                    ) from exc
                time.sleep(0.2)

    # -- writing --------------------------------------------------------------------------
    def send(
        self,
        topic: str,
        value: Any,
        *,
        key: Any = None,
        headers: Mapping[str, str | bytes] | None = None,
        timestamp: int | None = None,
        partition: int | None = None,
    ) -> None:
        """Encode ``value`` (and ``key``) with ``topic``'s contract and queue it.

        A value that breaks the contract raises :class:`~streamkit.errors.ContractError`
        here; :meth:`flush` waits for the broker's acknowledgements.
        """
        serdes = self._serdes(topic)
        raw_key = None if key is None else serdes.key.encode(key)
        raw_value = None if value is None else serdes.value.encode(value)
        kwargs: dict[str, Any] = {"on_delivery": self._delivered}
        if headers:
            kwargs["headers"] = [
                (k, v.encode() if isinstance(v, str) else v) for k, v in headers.items()
            ]
        if timestamp is not None:
            kwargs["timestamp"] = timestamp
        if partition is not None:
            kwargs["partition"] = partition
        producer = self._producer_for_send()
        while True:
            try:
                producer.produce(topic, raw_value, raw_key, **kwargs)
                return
            except BufferError:
                producer.poll(0.1)
            except KafkaException as exc:
                raise KafkaOperationError(f"producing to {topic} failed: {exc}") from exc

    def send_many(self, topic: str, events: Iterable[tuple[Any, Any]]) -> int:
        """Send ``(key, value)`` pairs to ``topic``; how many were queued."""
        count = 0
        for key, value in events:
            self.send(topic, value, key=key)
            count += 1
        return count

    def flush(self, timeout: float = 30.0) -> int:
        """Wait until every record sent is acknowledged; how many were, since the last
        flush. Raises :class:`~streamkit.errors.KafkaOperationError` naming the first
        record the broker refused, or when the acknowledgements do not come in time."""
        if self._producer is None:
            return 0
        remaining = self._producer.flush(timeout)
        failures, self._failures = self._failures, []
        acked, self._acked = self._acked, 0
        if remaining:
            raise KafkaOperationError(
                f"{remaining} records were not acknowledged within {timeout:.0f}s"
            )
        if failures:
            raise KafkaOperationError(f"{len(failures)} records failed; first: {failures[0]}")
        return acked

    # -- reading --------------------------------------------------------------------------
    def read(self, topic: str, *, stall: float = 30.0) -> list[Event]:
        """Every record of ``topic`` from its beginning to its end now, decoded with its
        contract (records of dead-letter, retry and changelog topics keep raw bytes)."""
        consumer = Consumer(
            {
                **self._config,
                "group.id": f"read-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "fetch.wait.max.ms": 20,
                **BOUNDED_READ,
            }
        )
        try:
            ranges = {}
            for tp, end in self.end_offsets(topic).items():
                low, _ = consumer.get_watermark_offsets(TopicPartition(*tp), timeout=10)
                ranges[tp] = (low, end)
            messages = list(read_until(consumer, ranges, stall=stall))
        finally:
            consumer.close()
        serdes = self.serdes.get(topic)
        events = []
        for msg in messages:
            key, value = msg.key(), msg.value()
            if serdes is not None:
                key = None if key is None else serdes.key.decode(key)
                value = None if value is None else serdes.value.decode(value)
            events.append(
                Event(
                    topic,
                    msg.partition() or 0,
                    msg.offset() or 0,
                    key,
                    value,
                    dict(message_headers(msg)),
                    msg.timestamp()[1],
                )
            )
        return sorted(events, key=lambda e: (e.partition, e.offset))

    # -- the app's group ------------------------------------------------------------------
    def committed(self) -> dict[TP, int | None]:
        """The app group's committed offset of every partition of its inputs."""
        parts = list(self.end_offsets(*self.topology.consumed()))
        return committed_offsets(self._admin, self.app.group_id, parts)

    def caught_up(self) -> bool:
        """Whether the app's group has committed every record of its inputs now."""
        ends = self.end_offsets(*self.topology.consumed())
        committed = committed_offsets(self._admin, self.app.group_id, list(ends))
        return all(end == 0 or committed.get(tp) == end for tp, end in ends.items())

    def assigned(self) -> int:
        """Partitions assigned to the members of the app's group right now."""
        try:
            (future,) = self._admin.describe_consumer_groups(
                [self.app.group_id], request_timeout=10
            ).values()
            group = future.result(timeout=15)
        except KafkaException:
            return 0
        return sum(len(m.assignment.topic_partitions) for m in group.members)

    def members(self) -> list[str]:
        """The members of the app's group, as ``client-id@host``."""
        return group_members(self._admin, self.app.group_id)[1]

    # -- lifecycle ------------------------------------------------------------------------
    def close(self) -> None:
        """Wait for what was sent (up to 30 s) and release the clients."""
        if self._producer is not None:
            self._producer.flush(30)
            self._producer = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def _serdes(self, topic: str) -> TopicSerdes:
        serdes = self.serdes.get(topic)
        if serdes is None:
            raise ConfigError(f"app {self.app.name} does not declare topic {topic}")
        return serdes

    def _producer_for_send(self) -> Producer:
        if self._producer is None:
            self._producer = Producer(
                {**self._config, "enable.idempotence": True, "acks": "all", "linger.ms": 5}
            )
        return self._producer

    def _delivered(self, err: KafkaError | None, msg: Any) -> None:
        if err is None:
            self._acked += 1
        else:
            self._failures.append(f"{msg.topic()}: {err.str()}")
