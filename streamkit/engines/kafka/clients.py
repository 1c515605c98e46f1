"""The Kafka clients of a worker: their configurations, and reading a partition to an end.

Users override any default here with ``STREAMKIT_KAFKA_*`` (see
:meth:`streamkit.settings.Settings.client_config`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping
from typing import Any

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from streamkit.errors import ConfigError, KafkaOperationError
from streamkit.records import TP
from streamkit.settings import Settings
from streamkit.topology import Topology

__all__ = [
    "BOUNDED_READ",
    "FETCH",
    "TRANSACTION_TIMEOUT_MS",
    "ChangelogReader",
    "check_topics",
    "consumer_config",
    "open_transaction_wait",
    "producer_config",
    "read_until",
]

log = logging.getLogger("streamkit.state")

TRANSACTION_TIMEOUT_MS = 60_000
"""An exactly-once worker's ``transaction.timeout.ms`` unless the user sets one
(librdkafka's default, set explicitly so that the wait below is computed from the value in
force): a transaction its producer leaves open is aborted by the coordinator this long
after it began, at the latest."""


def open_transaction_wait(timeout_ms: int) -> float:
    """How long a read waits on a transaction left open by another producer of the app,
    whose ``transaction.timeout.ms`` is ``timeout_ms``: that timeout, plus the
    coordinator's sweep for timed-out transactions (every 10 s), with a margin. A producer
    that died mid-transaction and is not restarted under its transactional id holds
    readers up that long."""
    return timeout_ms / 1000 + 40.0


_TELL_AFTER = 5.0

BOUNDED_READ: dict[str, Any] = {"auto.offset.reset": "error"}
"""The setting of every consumer that reads partitions to a known end (:func:`read_until`,
restores). When the records at its position are gone (deleted by retention or a records
deletion while they were read), librdkafka's default jumps to the partition's end: the
records after them are skipped without a word (or, in a quiet partition, the read stalls).
With ``error`` the reader is told, and reads on from the log's new start."""


# The consumer's fetching.
# - Prefetch bounded: librdkafka's defaults (64 MB of queued records, 50 MB fetches) let
#   a worker facing a backlog grow to about 190 MB, most of it fetch buffers that queued
#   records keep alive. The byte bound alone is not enough for small records: librdkafka
#   also keeps up to queued.min.messages (100,000) records queued, each with a few hundred
#   bytes of bookkeeping beyond its payload, and a record keeps its whole (decompressed)
#   fetch alive. With 10,000 records and 1 MB fetches a worker folding a 1M-record
#   backlog of 50-byte JSON peaks at 68 MB instead of 155 MB, and the peer benchmark's
#   streamkit (supervisor and worker) at 132 MB instead of 195 MB, with no throughput
#   cost beyond run-to-run noise: a 500-record batch needs a fraction of either
#   (benchmarks/aggregates.py, harness.py). A short queue backoff keeps the small queue
#   fed: librdkafka otherwise waits 1 s before fetching for a partition whose queue was
#   full.
# - Fetches gathered for up to 5 ms: with the default (answer as soon as 1 byte is there)
#   a stream of 5,000 records/s came in fetches of 1-3 records, and the fetching cost
#   the broker and the worker so much CPU on 2 cores that p99 latency swung from 21 ms to
#   over 1 s between passes; with 4 KiB or 5 ms it stayed at 29-49 ms (p50 10 ms instead
#   of 7-12 ms). 64 KiB cost a backlog a fifth of its throughput; 4 KiB cost nothing
#   measurable. The price: an idle worker asks the broker every 5 ms, not every 500 ms.
FETCH = {
    "queued.max.messages.kbytes": 8192,
    "queued.min.messages": 10_000,
    "fetch.max.bytes": 1024 * 1024,
    "fetch.queue.backoff.ms": 10,
    "fetch.min.bytes": 4096,
    "fetch.wait.max.ms": 5,
}


def client_id(app: str, worker_id: str) -> str:
    """The client id of a worker's consumer and producer (shown by `streamkit status`)."""
    return f"{app}-w{worker_id}-{os.getpid()}"


def consumer_config(
    settings: Settings, group_id: str, *, exactly_once: bool, extra: Mapping[str, Any]
) -> dict[str, Any]:
    """A worker's consumer: manual offset stores and commits, cooperative rebalancing."""
    return settings.client_config(
        FETCH,
        for_client="consumer",
        **{
            "group.id": group_id,
            "partition.assignment.strategy": "cooperative-sticky",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed" if exactly_once else "read_uncommitted",
            **dict(extra),
        },
    )


def producer_config(settings: Settings, extra: Mapping[str, Any]) -> dict[str, Any]:
    """A worker's producer: idempotent, ``acks=all``, batched and compressed."""
    return settings.client_config(
        for_client="producer",
        **{
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
            **dict(extra),
        },
    )


def check_topics(
    consumer: Consumer | Producer, settings: Settings, topology: Topology
) -> dict[str, int]:
    """Fail fast when the broker does not answer or a topic of the app is missing; the
    partition count of each topic of the app."""
    try:
        metadata = consumer.list_topics(timeout=15.0)
    except KafkaException as exc:
        raise KafkaOperationError(
            f"cannot reach Kafka at {settings.bootstrap_servers}: {exc.args[0].str()}"
        ) from exc
    names = {*topology.consumed(), *topology.outputs(), *topology.topics()}
    missing = sorted(n for n in names if n not in metadata.topics)
    if missing:
        raise ConfigError(
            f"topics of app {topology.name} do not exist: {', '.join(missing)} "
            "(create them with `streamkit topics create MODULE`)"
        )
    return {name: len(metadata.topics[name].partitions) for name in names}


class ChangelogReader:
    """Reads changelog partitions for restores, with a consumer that never joins a group.

    A restore reads committed records up to the partition's *high watermark*, not up to
    its last stable offset (the end a ``read_committed`` client is told): a transaction
    still open when the partition is assigned (a frozen previous owner's, say) ends
    either committed, and its state changes must be folded before the input offsets it
    committed are processed from, or aborted; either way the reader's position passes it
    only once it has ended. Stopping at the last stable offset instead lost the changes
    of a zombie's transaction that committed after the restore (the eos-zombie chaos
    scenario's counts ran short).
    """

    def __init__(
        self,
        settings: Settings,
        topology: Topology,
        transaction_timeout_ms: int = TRANSACTION_TIMEOUT_MS,
    ) -> None:
        self.transaction_timeout_ms = transaction_timeout_ms
        """The app's producers' ``transaction.timeout.ms``: what bounds waiting on one of
        their transactions left open (see :func:`open_transaction_wait`)."""
        self._config = settings.client_config(
            for_client="consumer",
            **{
                "group.id": topology.restore_group,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "isolation.level": "read_committed",
                **BOUNDED_READ,
                # Restores read to a known end, one partition after another: a
                # long-polling fetch (500 ms by default) or its backoff would hold up
                # the next partition's first fetch.
                "fetch.wait.max.ms": 20,
                "fetch.error.backoff.ms": 20,
                # One partition at a time: 1 MB per fetch (the default) left the restore
                # waiting on round trips (a third of its time, measured).
                "max.partition.fetch.bytes": 16 << 20,
            },
        )
        self._consumer: Consumer | None = None
        self._ends: Consumer | None = None  # read_uncommitted: its watermark is the HW

    def __call__(
        self, topic: str, partition: int, start: int
    ) -> tuple[int, Iterator[tuple[bytes | None, bytes | None, int]]]:
        """The changelog partition's end, and its records from ``start`` to that end."""
        if self._consumer is None or self._ends is None:
            self._consumer = Consumer(self._config)
            self._ends = Consumer({**self._config, "isolation.level": "read_uncommitted"})
        low, high = watermarks(self._ends, topic, partition)
        records = _records(
            self._consumer,
            topic,
            partition,
            max(start, low),
            high,
            transaction_timeout_ms=self.transaction_timeout_ms,
        )
        return high, records

    def close(self) -> None:
        """Close the consumers, if they were made."""
        for consumer in (self._consumer, self._ends):
            if consumer is not None:
                consumer.close()
        self._consumer = self._ends = None


_MOVING = frozenset(
    {
        KafkaError._UNKNOWN_PARTITION,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError._TRANSPORT,
        KafkaError._TIMED_OUT,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError._DESTROY_BROKER,  # the dead broker left the metadata while asked
    }
)


def watermarks(
    consumer: Consumer, topic: str, partition: int, deadline: float = 60.0
) -> tuple[int, int]:
    """A partition's low and high watermarks, asked again while its leadership moves (a
    broker of the cluster died: its partitions are unknown or leaderless for seconds)."""
    give_up = time.monotonic() + deadline
    while True:
        try:
            return consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=5)
        except KafkaException as exc:
            if exc.args[0].code() not in _MOVING or time.monotonic() > give_up:
                raise KafkaOperationError(
                    f"reading the offsets of {topic}[{partition}] failed: {exc.args[0].str()}"
                ) from exc
        # The client asks the leader it knows, which may be the dead one, until its
        # metadata is refreshed: ask again only once the metadata names a live leader
        # (asking a broker that is being dropped from the metadata can abort librdkafka).
        time.sleep(0.2)
        while time.monotonic() < give_up and not _leader_known(consumer, topic, partition):
            time.sleep(0.5)


def _leader_known(consumer: Consumer, topic: str, partition: int) -> bool:
    """Whether fresh metadata names a leader of the partition among the live brokers."""
    try:
        metadata = consumer.list_topics(topic, timeout=5)
    except KafkaException:
        return False
    info = metadata.topics.get(topic)
    found = None if info is None else info.partitions.get(partition)
    return found is not None and found.leader in metadata.brokers


def _records(
    consumer: Consumer,
    topic: str,
    partition: int,
    first: int,
    end: int,
    *,
    transaction_timeout_ms: int,
) -> Iterator[tuple[bytes | None, bytes | None, int]]:
    """``(key, value, offset)`` of one partition from ``first`` to its end (a position:
    see :func:`read_until`), in large batches: the restore's hot loop. Gives up when a
    transaction left open there has not ended in :func:`open_transaction_wait`."""
    stall = open_transaction_wait(transaction_timeout_ms)
    if end <= first:
        return
    here = TopicPartition(topic, partition)
    consumer.assign([TopicPartition(topic, partition, first)])
    idle_since, told = time.monotonic(), False
    while True:
        batch = consumer.consume(10_000, 0.05)
        for msg in batch:
            error = msg.error()
            if error is None:
                yield msg.key(), msg.value(), msg.offset() or 0
            elif error.fatal():
                raise KafkaOperationError(f"reading {topic} failed: {error.str()}")
            else:
                low = _past_deleted(consumer, error, topic, partition)
                if low is not None and low >= end:
                    return
        position = consumer.position([here])[0].offset
        if position >= end:
            return
        if batch:
            idle_since, told = time.monotonic(), False
        elif time.monotonic() - idle_since > stall:
            raise KafkaOperationError(
                f"reading {topic}[{partition}] stalled at offset {position}, before its end {end}"
            )
        elif not told and time.monotonic() - idle_since > _TELL_AFTER:
            told = True
            log.info(
                "reading %s[%d] waits at offset %d, before its end %d: a transaction open "
                "there must end first (it is aborted %d s after it began at the latest)",
                topic,
                partition,
                position,
                end,
                transaction_timeout_ms // 1000,
            )


def read_until(
    consumer: Consumer, ranges: Mapping[TP, tuple[int, int]], *, stall: float = 60.0
) -> Iterator[Message]:
    """Every record of each partition from its start up to its end (exclusive).

    A partition is done when the consumer's *position* reaches its end, not when a record
    at ``end - 1`` arrives: transaction markers take offsets but are never delivered, so a
    transactional topic's last record can sit before its end. Raises
    :class:`KafkaOperationError` when nothing arrives for ``stall`` seconds. The consumer
    is configured with :data:`BOUNDED_READ`.
    """
    todo = {tp: end for tp, (start, end) in ranges.items() if end > start}
    if not todo:
        return
    consumer.assign([TopicPartition(t, p, ranges[(t, p)][0]) for t, p in todo])
    idle_since = time.monotonic()
    while todo:
        # What has arrived, without waiting for a full batch (a small partition would
        # otherwise cost the whole timeout); only when nothing has, wait for a record.
        batch = consumer.consume(1000, timeout=0)
        if not batch:
            first = consumer.poll(0.2)
            batch = [] if first is None else [first]
        for msg in batch:
            error = msg.error()
            if error is not None:
                if error.fatal():
                    raise KafkaOperationError(f"reading {msg.topic()} failed: {error.str()}")
                tp = (msg.topic() or "", msg.partition() or 0)
                low = _past_deleted(consumer, error, *tp) if tp in todo else None
                if low is not None and low >= todo[tp]:
                    del todo[tp]
                continue
            end = todo.get((msg.topic() or "", msg.partition() or 0))
            if end is not None and (msg.offset() or 0) < end:
                yield msg
        for tp in list(todo):
            (position,) = consumer.position([TopicPartition(*tp)])
            if position.offset >= todo[tp]:
                del todo[tp]
        if batch:
            idle_since = time.monotonic()
        elif todo and time.monotonic() - idle_since > stall:
            where = ", ".join(f"{t}[{p}]" for t, p in sorted(todo))
            raise KafkaOperationError(f"reading {where} stalled before its end")


def _past_deleted(consumer: Consumer, error: KafkaError, topic: str, partition: int) -> int | None:
    """When ``error`` says the records at the reader's position are gone (see
    :data:`BOUNDED_READ`): read on from the partition's log start, say so, and return it;
    None for any other error."""
    if error.code() != KafkaError._AUTO_OFFSET_RESET:
        return None
    low, _ = watermarks(consumer, topic, partition)
    # The partition's fetcher stopped on the error (a seek is refused): assign it again.
    consumer.incremental_unassign([TopicPartition(topic, partition)])
    consumer.incremental_assign([TopicPartition(topic, partition, low)])
    log.warning(
        "%s[%d]: records were deleted before they were read (%s); reading on from the "
        "log start, offset %d",
        topic,
        partition,
        error.str(),
        low,
    )
    return low
