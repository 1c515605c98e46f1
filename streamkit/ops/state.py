"""Reading state from outside the workers: the latest changelog value of a key."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from streamkit.app import App
from streamkit.engines.kafka.clients import read_until
from streamkit.errors import ConfigError
from streamkit.state.stores import decode_entry
from streamkit.topology import Topology

__all__ = ["StateAnswer", "read_state"]


@dataclass(frozen=True)
class StateAnswer:
    """A key's state as its changelog says (``found`` False: no state)."""

    store: str
    key: str
    found: bool
    state: Any = None
    partition: int | None = None


def read_state(app: App, config: Mapping[str, Any], store: str, key: str) -> StateAnswer:
    """Scan ``store``'s changelog (every partition, compacted) for ``key``'s last value."""
    topology = Topology(app)
    stores = {a.store for a in app.aggregates}
    if store not in stores:
        raise ConfigError(f"app {app.name} has no store {store!r} (stores: {sorted(stores)})")
    topic = topology.changelog(store)
    consumer = Consumer(
        {**config, "group.id": f"state-get-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False,
         "isolation.level": "read_committed"}
    )  # fmt: skip
    wanted = key.encode()
    answer = StateAnswer(store, key, False)
    try:
        info = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if info is None or info.error is not None:
            raise ConfigError(f"changelog {topic} does not exist")
        ranges = {}
        for p in info.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            ranges[(topic, p)] = (low, high)
        for msg in read_until(consumer, ranges, stall=120):
            if msg.key() == wanted:
                value = msg.value()
                answer = (
                    StateAnswer(store, key, False)
                    if value is None
                    else StateAnswer(store, key, True, decode_entry(value).state, msg.partition())
                )
    finally:
        consumer.close()
    return answer
