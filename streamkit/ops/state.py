"""Reading state from outside the workers: the latest changelog value of a key."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from streamkit.app import App
from streamkit.engines.kafka.clients import BOUNDED_READ, read_until
from streamkit.errors import ConfigError
from streamkit.state.stores import decode_entry
from streamkit.state.window_store import describe, window_keys
from streamkit.topology import Topology

__all__ = ["StateAnswer", "read_changelog", "read_state"]


@dataclass(frozen=True)
class StateAnswer:
    """A key's state as its changelog says (``found`` False: no state)."""

    store: str
    key: str
    found: bool
    state: Any = None
    partition: int | None = None


def read_state(
    app: App,
    config: Mapping[str, Any],
    store: str,
    key: str,
    *,
    since: int = 0,
    until: int | None = None,
) -> StateAnswer:
    """Scan ``store``'s changelog (every partition, compacted) for ``key``'s last value.

    For a window store the answer's state is the key's windows still held (open, or closed
    by idleness and kept) overlapping ``[since, until)``: start, end, value, closed.
    """
    topology = Topology(app)
    windows = {w.store: w for w in app.windows}
    stores = sorted({a.store for a in app.aggregates} | set(windows))
    if store not in stores:
        raise ConfigError(f"app {app.name} has no store {store!r} (stores: {stores})")
    spec = windows.get(store)
    wanted, prefix = window_keys(key)
    latest: dict[str, tuple[bytes | None, int]] = {}
    for msg in read_changelog(topology.changelog(store), config):
        name = (msg.key() or b"").decode("utf-8", "replace")
        if name == wanted or (spec is not None and name.startswith(prefix)):
            latest[name] = (msg.value(), msg.partition() or 0)
    if spec is None:
        value, partition = latest.get(key, (None, 0))
        if value is None:
            return StateAnswer(store, key, False)
        return StateAnswer(store, key, True, decode_entry(value).state, partition)
    found = [
        window
        for value, _ in latest.values()
        if value is not None
        for window in describe(spec, decode_entry(value).state)
        if window["end"] > since and (until is None or window["start"] < until)
    ]
    found.sort(key=lambda w: (w["start"], w["end"]))
    partitions = {p for value, p in latest.values() if value is not None}
    return StateAnswer(store, key, bool(found), found, min(partitions) if partitions else None)


def read_changelog(topic: str, config: Mapping[str, Any]) -> Iterator[Any]:
    """Every record of a changelog, every partition, to its end now."""
    consumer = Consumer(
        {
            **config,
            "group.id": f"state-get-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "fetch.wait.max.ms": 20,
            **BOUNDED_READ,
        }
    )
    try:
        info = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if info is None or info.error is not None:
            raise ConfigError(f"changelog {topic} does not exist")
        ranges = {}
        for p in info.partitions:
            ranges[(topic, p)] = consumer.get_watermark_offsets(
                TopicPartition(topic, p), timeout=10
            )
        yield from read_until(consumer, ranges, stall=120)
    finally:
        consumer.close()
