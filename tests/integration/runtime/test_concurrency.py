"""Concurrent processors on a real broker: key order under concurrency, nothing committed
past an in-flight record (kill -9), retries and timeouts per key, no rebalance for a call
longer than max.poll.interval.ms."""

import asyncio
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from streamkit import App, Middleware, RetryPolicy
from streamkit.engines.kafka import KafkaWorker, WorkerOptions
from streamkit.ops.client import AppClient
from streamkit.settings import Settings
from streamkit.testing.plugin import TopicFactory
from tests.integration.helpers import committed_offsets, read_all, stop_all
from tests.integration.runtime.conftest import ROOT, wait_for
from tests.integration.state.conftest import children_of

PARTITIONS = 4


class Rebalances(Middleware):
    def __init__(self) -> None:
        self.seen: list[str] = []

    def on_rebalance(self, kind: str, count: int) -> None:  # type: ignore[override]
        self.seen.append(kind)


def _app(topic_factory: TopicFactory, kafka_bootstrap: str, **app: Any) -> tuple[App, str, str]:
    source, sink = topic_factory(PARTITIONS, prefix="conc-in"), topic_factory(PARTITIONS)
    made = App(f"conc-{uuid.uuid4().hex[:6]}", **app)
    made.topic(source, partitions=PARTITIONS)
    made.topic(sink, partitions=PARTITIONS)
    return made, source, sink


def _run(
    app: App, bootstrap: str, **options: Any
) -> tuple[KafkaWorker, threading.Thread, Rebalances]:
    AppClient(app, Settings(bootstrap_servers=bootstrap)).create_topics()
    rebalances = Rebalances()
    worker = KafkaWorker(
        app,
        settings=Settings(bootstrap_servers=bootstrap),
        options=WorkerOptions(commit_interval=0.2, **options),
        middleware=[rebalances],
    )
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    return worker, thread, rebalances


@pytest.fixture
def stopped() -> Iterator[list[tuple[KafkaWorker, threading.Thread]]]:
    """Workers the test started; stopped when it ends, passed or failed."""
    started: list[tuple[KafkaWorker, threading.Thread]] = []
    yield started
    for worker, thread in started:
        worker.request_stop()
        thread.join(60)


def _produce(config: dict[str, Any], topic: str, count: int, keys: int) -> None:
    producer = Producer(config)
    for n in range(count):
        key = f"k{n % keys}"
        producer.produce(topic, orjson.dumps({"k": key, "n": n}), key.encode())
    assert producer.flush(30) == 0


def _all_committed(config: dict[str, Any], app: App, topic: str, count: int) -> bool:
    return (
        sum(max(0, o) for o in committed_offsets(config, app.group_id, topic, PARTITIONS).values())
        == count
    )


@pytest.mark.parametrize(
    ("kind", "ordering"), [("async", "key"), ("sync", "partition"), ("sync", "unordered")]
)
def test_order_holds_under_concurrency_with_random_delays(
    kafka_bootstrap: str,
    kafka_config: dict[str, Any],
    topic_factory: TopicFactory,
    stopped: list[Any],
    kind: str,
    ordering: str,
) -> None:
    app, source, sink = _app(topic_factory, kafka_bootstrap)
    running, peak, lock = [0], [0], threading.Lock()

    def enter() -> None:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])

    def leave() -> None:
        with lock:
            running[0] -= 1

    if kind == "async":

        @app.processor(input=source, output=sink, concurrency=100, ordering=ordering)
        async def call(event: dict[str, Any]) -> dict[str, Any]:
            enter()
            await asyncio.sleep(random.random() * 0.01)
            leave()
            return event

    else:

        @app.processor(input=source, output=sink, concurrency=20, ordering=ordering)
        def call(event: dict[str, Any]) -> dict[str, Any]:
            enter()
            time.sleep(random.random() * 0.005)
            leave()
            return event

    count = 3000
    _produce(kafka_config, source, count, keys=300)
    worker, thread, _ = _run(app, kafka_bootstrap)
    stopped.append((worker, thread))
    wait_for(lambda: _all_committed(kafka_config, app, source, count), 90, "all committed")
    outputs = read_all(kafka_config, sink)
    values = [orjson.loads(m.value() or b"") for m in outputs]
    assert sorted(v["n"] for v in values) == list(range(count))  # each exactly once
    assert 1 < peak[0] <= (100 if kind == "async" else 20)
    if ordering == "unordered":
        return
    by: dict[Any, list[int]] = defaultdict(list)  # keys keep their partition: per key
    for message, value in zip(outputs, values, strict=True):  # read per partition in order
        by[value["k"] if ordering == "key" else message.partition()].append(value["n"])
    assert all(ns == sorted(ns) for ns in by.values())


def test_a_retry_holds_only_its_key_and_a_timeout_counts_as_a_failure(
    kafka_bootstrap: str,
    kafka_config: dict[str, Any],
    topic_factory: TopicFactory,
    stopped: list[Any],
) -> None:
    app, source, sink = _app(topic_factory, kafka_bootstrap, dead_letters=True)
    attempts: dict[int, int] = defaultdict(int)
    log: list[tuple[str, int]] = []

    @app.processor(
        input=source,
        output=sink,
        concurrency=20,
        timeout="300ms",
        retries=RetryPolicy(attempts=3, backoff=0.5, jitter=0),
    )
    async def call(event: dict[str, Any]) -> dict[str, Any]:
        n = event["n"]
        attempts[n] += 1
        if event["k"] == "k0" and attempts[n] < 3:  # k0 fails twice, then succeeds
            log.append(("failed", n))
            raise ConnectionError("the service is down")
        if event["k"] == "k1":  # k1 never answers in time: dead-lettered
            await asyncio.sleep(5)
        log.append(("ok", n))
        return event

    count = 400
    _produce(kafka_config, source, count, keys=40)
    worker, thread, _ = _run(app, kafka_bootstrap)
    stopped.append((worker, thread))
    wait_for(lambda: _all_committed(kafka_config, app, source, count), 90, "all committed")
    k0 = [n for n in range(count) if n % 40 == 0]
    k1 = [n for n in range(count) if n % 40 == 1]
    values = [orjson.loads(m.value() or b"")["n"] for m in read_all(kafka_config, sink)]
    assert sorted(values) == sorted(set(range(count)) - set(k1))
    assert [n for n in values if n % 40 == 0] == k0  # the retried key, still in order
    assert all(attempts[n] == 3 for n in k0 + k1)  # k1: the first try and two retries
    first_failure = log.index(("failed", k0[0]))
    first_success = log.index(("ok", k0[0]))
    others = [n for kind, n in log[first_failure:first_success] if kind == "ok"]
    assert len(others) > 20  # other keys went on while k0 waited for its retry
    dead = read_all(kafka_config, f"{app.name}-{source}-dlq")
    assert sorted(orjson.loads(m.value() or b"")["n"] for m in dead) == k1
    for record in dead:
        headers = [value or b"" for _, value in record.headers() or []]
        assert any(b"took longer than its timeout of 0.3s" in value for value in headers)


def test_a_call_longer_than_max_poll_interval_does_not_rebalance(
    kafka_bootstrap: str,
    kafka_config: dict[str, Any],
    topic_factory: TopicFactory,
    stopped: list[Any],
) -> None:
    app, source, sink = _app(topic_factory, kafka_bootstrap)

    @app.processor(input=source, output=sink, concurrency=4)
    async def call(event: dict[str, Any]) -> dict[str, Any]:
        if event["n"] == 0:
            await asyncio.sleep(9)  # past max.poll.interval.ms (6 s)
        return event

    _produce(kafka_config, source, 20, keys=20)
    consumer = {"max.poll.interval.ms": 6000, "session.timeout.ms": 6000}
    worker, thread, rebalances = _run(app, kafka_bootstrap, consumer=consumer)
    stopped.append((worker, thread))
    wait_for(lambda: _all_committed(kafka_config, app, source, 20), 60, "all committed")
    assert rebalances.seen == ["assigned"]
    assert sorted(orjson.loads(m.value() or b"")["n"] for m in read_all(kafka_config, sink)) == (
        list(range(20))
    )


def test_kill_9_with_hundreds_in_flight_loses_nothing(
    kafka_bootstrap: str, kafka_config: dict[str, Any], topic_factory: TopicFactory
) -> None:
    source, sink = topic_factory(PARTITIONS, prefix="conc-in"), topic_factory(PARTITIONS)
    group, count, pending = f"conc-{uuid.uuid4().hex[:6]}", 6000, 400
    env = {
        **os.environ,
        "STREAMKIT_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "PYTHONPATH": ROOT,
        "CONC_INPUT": source,
        "CONC_OUTPUT": sink,
        "CONC_GROUP": group,
        "CONC_PARTITIONS": str(PARTITIONS),
        "CONC_WIDTH": "200",
        "CONC_MAX_DELAY_MS": "100",
    }
    module = "tests.integration.apps.concurrent"
    subprocess.run(
        [sys.executable, "-m", "streamkit", "topics", "create", module],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=60,
    )
    _produce(kafka_config, source, count, keys=1000)
    command = [
        sys.executable,
        "-m",
        "streamkit",
        "run",
        module,
        "--max-pending",
        str(pending),
        "--commit-interval",
        "0.2",
    ]
    processes = [subprocess.Popen(command, env=env, cwd=ROOT, stderr=subprocess.PIPE)]
    try:
        wait_for(lambda: len(read_all(kafka_config, sink, stall=5)) >= 1500, 90, "outputs")
        (worker,) = children_of(processes[0].pid)
        os.kill(worker, signal.SIGKILL)  # hundreds of calls in flight, finishing out of order
        wait_for(lambda: children_of(processes[0].pid) not in ([], [worker]), 60, "a restart")
        app = App(group)
        wait_for(lambda: _all_committed(kafka_config, app, source, count), 120, "all committed")
    finally:
        stop_all(processes)
    values = [orjson.loads(m.value() or b"") for m in read_all(kafka_config, sink)]
    seen = [v["n"] for v in values]
    assert set(seen) == set(range(count))  # nothing lost
    duplicates = len(seen) - count
    # The README's bound per kill: what was taken and not yet committable (--max-pending),
    # one batch taken past it before the pause, and what finished within one commit
    # interval (here 0.2 s at most 200 calls of 50 ms on average: 4,000 records/s).
    bound = pending + 500 + int(0.2 * 200 / (0.1 / 2))
    assert 0 < duplicates <= bound, f"{duplicates} duplicates after one kill, bound {bound}"
    assert len({v["pid"] for v in values}) == 2


def test_a_graceful_stop_lets_running_calls_finish_and_commits_them(
    kafka_bootstrap: str, kafka_config: dict[str, Any], topic_factory: TopicFactory
) -> None:
    app, source, sink = _app(topic_factory, kafka_bootstrap)
    started = threading.Semaphore(0)

    @app.processor(input=source, output=sink, concurrency=50)
    async def call(event: dict[str, Any]) -> dict[str, Any]:
        started.release()
        await asyncio.sleep(1.5)
        return event

    _produce(kafka_config, source, 40, keys=40)
    worker, thread, _ = _run(app, kafka_bootstrap)
    try:
        for _ in range(40):
            assert started.acquire(timeout=60), "the calls did not start"
    finally:
        worker.request_stop()  # all 40 calls are running now
        thread.join(60)
    assert not thread.is_alive()
    outputs = read_all(kafka_config, sink)
    assert sorted(orjson.loads(m.value() or b"")["n"] for m in outputs) == list(range(40))
    assert _all_committed(kafka_config, app, source, 40)
