"""What the benchmarks share: the broker they run on (``STREAMKIT_BOOTSTRAP_SERVERS``, else
a local one of their own: KRaft, from the Maven jars, on a free port, its data removed
after), and one run of an implementation until its output is complete."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from benchmarks._measure import Tree, count, span_ms, stop
from streamkit.ops.admin import TopicSpec, admin_client, create_topics, delete_topics
from streamkit.ops.local_broker import LocalBroker, LocalBrokerConfig, free_port
from streamkit.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


Create = Callable[[list[TopicSpec]], None]
"""Makes topics on the benchmark's broker and lists them to be deleted at the end."""


@contextmanager
def bench_broker() -> Iterator[tuple[str, Create, list[str]]]:
    """``(bootstrap, create(specs), topics made)``: ``create`` makes topics on the broker
    and lists them; append to the list every other topic the run makes (its apps'
    outputs, changelogs). On a shared broker they are deleted at the end (only then: a
    broker removes a deleted topic's files a minute later, which stalls whoever runs at
    that moment), a broker of our own goes with its data."""
    bootstrap = os.environ.get("STREAMKIT_BOOTSTRAP_SERVERS")
    broker, data_dir = None, None
    if not bootstrap:
        data_dir = Path(tempfile.mkdtemp(prefix="streamkit-bench-"))
        # Kafka's default initial rebalance delay (the local broker has none, for fast
        # tests): members starting together join one generation, so a second worker or
        # thread does not rebalance the group once the first has started.
        broker = LocalBroker(
            LocalBrokerConfig(
                data_dir=data_dir,
                cache_dir=Settings.from_env().cache_dir,
                port=free_port(),
                heap="1g",
                extra={"group.initial.rebalance.delay.ms": "3000"},
            )
        )
        bootstrap = broker.start().bootstrap_servers
    made: list[str] = []
    admin: AdminClient | None = admin_client({"bootstrap.servers": bootstrap})

    def create(specs: list[TopicSpec]) -> None:
        if admin is None:
            raise RuntimeError("the benchmark's broker is gone")
        create_topics(admin, specs)
        made.extend(spec.name for spec in specs)

    try:
        yield bootstrap, create, made
    finally:
        if broker is None and admin is not None:
            delete_topics(admin, made)
        # The client's only reference (``create`` reads this variable, callers never see
        # the client): it goes before its broker stops, else it logs refused connections
        # until the process exits.
        admin = None
        if broker is not None:
            broker.stop()
        if data_dir is not None:
            shutil.rmtree(data_dir, ignore_errors=True)


@dataclass
class Run:
    """What one run of an implementation measured: the first and the last output's append
    time (ms) and the peak RSS of its process tree (MB)."""

    first_ms: int
    last_ms: int
    rss_mb: float
    worker_rss_mb: float = 0.0

    def rate(self, records: int) -> float:
        """``records`` over the span between the first and the last output."""
        return records / max(0.001, (self.last_ms - self.first_ms) / 1000)


def run_until_written(
    name: str,
    command: list[str],
    env: dict[str, str],
    bootstrap: str,
    output: str,
    expected: int,
    *,
    timeout: float,
) -> Run:
    """Start ``command``, wait until ``output`` holds ``expected`` records, wait 2 s more (a
    duplicate would show), stop it; the run fails on a wrong count, a crash or ``timeout``
    seconds, with the end of its stderr."""
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": f"probe-{uuid.uuid4().hex}"})
    partitions = _partitions(bootstrap, output)
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed below
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)
    tree = Tree(process.pid)
    try:
        deadline = time.monotonic() + timeout
        while (written := count(probe, output, partitions)) < expected:
            if process.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise RuntimeError(
                    f"{name}: {written} of {expected} outputs: "
                    + log.read().decode(errors="replace")[-2000:]
                )
            tree.sample()
            time.sleep(0.2)
        time.sleep(2)
        if (written := count(probe, output, partitions)) != expected:
            raise RuntimeError(f"{name}: {written} outputs, {expected} expected")
    finally:
        stop(process)
        log.close()
    first, last = span_ms(probe, output, partitions)
    probe.close()
    return Run(first, last, tree.peak_rss_mb, tree.largest_rss_mb)


def _partitions(bootstrap: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-meta"})
    try:
        return len(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
    finally:
        consumer.close()


def send(producer: Producer, topic: str, value: bytes, key: bytes, n: int) -> None:
    """Produce the ``n``-th record of a dataset, waiting while the queue is full (and
    serving delivery reports every 10,000 records)."""
    while True:
        try:
            producer.produce(topic, value, key)
            break
        except BufferError:
            producer.poll(0.1)
    if n % 10_000 == 0:
        producer.poll(0)
