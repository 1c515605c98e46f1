"""Concurrent processors without a broker: their declaration, what is refused at start-up,
the scheduler's lanes, and async processors run one at a time by the TestDriver."""

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from queue import SimpleQueue
from typing import Any

import orjson
import pytest

from streamkit import App, Change, Dedupe, Middleware, RetryPolicy
from streamkit.engines.memory import MemoryEngine
from streamkit.errors import ConfigError, ProcessorTimeoutError
from streamkit.processor import ProcessorSpec, RecordInfo
from streamkit.runtime._scheduler import EventLoopThread, Job, Scheduler
from streamkit.runtime.pipeline import Pipeline
from streamkit.settings import Settings
from streamkit.testing import TestDriver


def _app(**kwargs: Any) -> App:
    app = App("c", **kwargs)
    app.topic("in")
    app.topic("out")
    return app


def test_async_processors_are_concurrent_by_default_and_sync_ones_when_asked() -> None:
    app = _app()

    @app.processor(input="in", output="out")
    async def fetch(event: dict[str, Any]) -> dict[str, Any]:
        return event

    (spec,) = app.processors
    assert spec.is_async
    assert spec.concurrent
    assert spec.concurrency == 100
    assert spec.ordering == "key"
    assert spec.timeout is None
    plain = ProcessorSpec.build(
        lambda e: e,
        input="in",
        output="out",
        outputs=[],
        name="p",
        concurrency=8,
        ordering="partition",
        timeout="1.5s",
    )
    assert plain.concurrent
    assert not plain.is_async
    assert (plain.concurrency, plain.ordering, plain.timeout) == (8, "partition", 1.5)
    one = ProcessorSpec.build(lambda e: e, input="in", output="out", outputs=[], name="o")
    assert not one.concurrent


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"concurrency": 0}, "concurrency must be a whole number"),
        ({"concurrency": 2.5}, "concurrency must be a whole number"),
        ({"ordering": "offset"}, "ordering='offset' is not one of key, partition, unordered"),
        ({"timeout": 0}, "timeout must be positive"),
        ({"timeout": "soon"}, "timeout='soon'"),
        ({"concurrency": 4, "retry_topics": ["1s"]}, "cannot take retry_topics="),
    ],
)
def test_bad_declarations_say_what_is_wrong(kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError, match=words.replace("(", r"\(")):
        ProcessorSpec.build(lambda e: e, input="in", output="out", outputs=[], name="p", **kwargs)


def test_exactly_once_and_a_shared_input_are_refused_at_start_up() -> None:
    eos = _app(guarantee="exactly_once")

    @eos.processor(input="in", output="out", concurrency=10)
    def send(event: dict[str, Any]) -> dict[str, Any]:
        return event

    with pytest.raises(ConfigError, match="exactly_once cannot cover"):
        Pipeline(eos, Settings())
    shared = _app()

    @shared.processor(input="in", output="out")
    async def first(event: dict[str, Any]) -> dict[str, Any]:
        return event

    @shared.aggregate(input="in", store="totals", key="k")
    def totals(state: int | None, event: dict[str, Any]) -> int:
        return (state or 0) + 1

    with pytest.raises(ConfigError, match="shares its input in with totals"):
        Pipeline(shared, Settings())


def test_the_driver_awaits_async_processors_with_their_timeout() -> None:
    app = _app(dead_letters=True)

    @app.processor(input="in", output="out", timeout=0.05, retries=RetryPolicy(attempts=2))
    async def lookup(event: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(event["wait"])
        return {"n": event["n"] * 10}

    driver = TestDriver(app)
    driver.send("in", {"n": 1, "wait": 0}, key="a")
    driver.send("in", {"n": 2, "wait": 5}, key="b")
    assert driver.values("out") == [{"n": 10}]
    (dead,) = driver.dead_letters("in")
    assert "processor lookup took longer than its timeout of 0.05s" in str(dead.error)
    assert driver.engine.waits == [("lookup", 1, pytest.approx(0.5, rel=0.5))]


def _scheduler(width: int, fn: Any, **kwargs: Any) -> tuple[Scheduler, SimpleQueue[Job]]:
    spec = ProcessorSpec.build(
        fn, input="in", output="out", outputs=[], name="s", concurrency=width, **kwargs
    )
    done: SimpleQueue[Job] = SimpleQueue()
    return Scheduler(spec, done, None), done


def test_a_lane_runs_one_job_at_a_time_until_released_while_other_lanes_run() -> None:
    running: dict[str, int] = {}
    overlap = threading.Event()
    lock = threading.Lock()

    def call(key: str) -> str:
        with lock:
            running[key] = running.get(key, 0) + 1
            if running[key] > 1:
                overlap.set()
        time.sleep(0.01)
        with lock:
            running[key] -= 1
        return key

    scheduler, done = _scheduler(8, call)
    order: dict[str, list[int]] = {}
    jobs = [Job(f"k{i % 4}", (f"k{i % 4}",), i) for i in range(40)]
    for job in jobs:
        scheduler.submit(job)
    settled = 0
    deadline = time.monotonic() + 10
    while settled < len(jobs) and time.monotonic() < deadline:
        job = done.get(timeout=5)
        order.setdefault(job.lane, []).append(job.payload)  # type: ignore[arg-type]
        scheduler.release(job)
        settled += 1
    scheduler.close()
    assert settled == 40
    assert not overlap.is_set()
    assert all(v == sorted(v) for v in order.values())
    assert len(order) == 4
    assert scheduler.pending == 0
    assert scheduler.busy == 0


def test_a_thread_past_its_timeout_is_reported_and_its_late_result_dropped() -> None:
    release = threading.Event()

    def call(n: int) -> int:
        if n == 0:
            release.wait(5)
        return n

    scheduler, done = _scheduler(2, call, timeout=0.05)
    hung, quick = Job("a", (0,), "hung"), Job("b", (1,), "quick")
    scheduler.submit(hung)
    scheduler.submit(quick)
    assert done.get(timeout=5) is quick
    deadline = time.monotonic() + 5
    while done.empty() and time.monotonic() < deadline:
        scheduler.due()
        time.sleep(0.01)
    assert done.get_nowait() is hung
    assert isinstance(hung.error, ProcessorTimeoutError)
    assert scheduler.busy == 1  # its thread still runs: its slot stays taken
    release.set()
    deadline = time.monotonic() + 5
    while scheduler.busy and time.monotonic() < deadline:
        time.sleep(0.01)
    assert scheduler.busy == 0
    assert done.empty()
    scheduler.close()


@pytest.mark.parametrize("kind", ["threads", "event loop"])
def test_a_worker_runs_each_call_inside_its_records_middleware_context(kind: str) -> None:
    # On a worker the calls run on a pool's threads or the event loop: the context is
    # entered there, around the call, and the headers it adds come back with the result.
    def sync_call(n: int) -> str:
        return _MARK.get()

    async def async_call(n: int) -> str:
        return _MARK.get()

    fn = sync_call if kind == "threads" else async_call
    spec = ProcessorSpec.build(fn, input="in", output="out", outputs=[], name="s", concurrency=2)
    done: SimpleQueue[Job] = SimpleQueue()
    loop = EventLoopThread() if kind == "event loop" else None
    middleware = _Marking()
    info = [RecordInfo("in", 0, n, None, [], "g") for n in range(2)]
    scheduler = Scheduler(spec, done, loop, around=lambda job: middleware.on_record(job.payload))
    jobs = [Job(None, (n,), info[n]) for n in range(2)]
    for job in jobs:
        scheduler.submit(job)
    finished = {id(done.get(timeout=5)) for _ in jobs}
    assert finished == {id(job) for job in jobs}
    assert [job.result for job in jobs] == ["in@0", "in@1"]
    assert [job.extra for job in jobs] == [[("mark", b"in@0")], [("mark", b"in@1")]]
    assert _MARK.get() == "none"  # left where it was entered
    scheduler.close()
    if loop is not None:
        loop.close()


def test_abandoned_jobs_never_start_and_their_lane_is_freed() -> None:
    gate = threading.Event()
    scheduler, done = _scheduler(1, lambda n: gate.wait(5))
    first, second, third = Job("k", (0,), 0), Job("k", (1,), 1), Job(None, (2,), 2)
    for job in (first, second, third):
        scheduler.submit(job)
    assert scheduler.abandon(lambda job: job.payload == 0) == 2
    assert scheduler.pending == 1
    gate.set()
    assert done.get(timeout=5) is first
    scheduler.release(first)
    scheduler.close()
    assert done.empty()
    assert scheduler.pending == 0
    assert not second.running


def test_dedupe_is_kept_for_async_processors_in_the_driver() -> None:
    app = _app()

    @app.processor(input="in", output="out", dedupe=Dedupe(field="id", window="1h"))
    async def once(event: dict[str, Any]) -> dict[str, Any]:
        return event

    driver = TestDriver(app)
    for _ in range(3):
        driver.send("in", {"id": "x"}, key="k")
    assert driver.values("out") == [{"id": "x"}]


# -- the driver runs concurrent processors through the worker's path -----------------------
def test_a_change_topics_tombstone_reaches_a_concurrent_processor_as_a_plain_one() -> None:
    # One admission: a tombstone of a change topic is a Change whose op is tombstone for
    # every processor (concurrent ones counted it as filtered before).
    seen: dict[str, list[str]] = {"plain": [], "concurrent": []}
    app = App("cdc")
    app.topic("pg.a", value="debezium", key="debezium")
    app.topic("pg.b", value="debezium", key="debezium")

    @app.processor(input="pg.a")
    def plain(change: Change) -> None:
        seen["plain"].append(change.op)

    @app.processor(input="pg.b", concurrency=4)
    def concurrent(change: Change) -> None:
        seen["concurrent"].append(change.op)

    driver = TestDriver(app)
    for topic in ("pg.a", "pg.b"):
        driver.send_raw(topic, None, key=b'{"id": 1}')
    assert seen == {"plain": ["tombstone"], "concurrent": ["tombstone"]}
    assert driver.engine.counters.filtered == 2  # each returned nothing


class _Marking(Middleware):
    """Sets a context variable around each record, and adds a header from it."""

    def on_record(self, record: RecordInfo) -> AbstractContextManager[list[tuple[str, bytes]]]:
        return self._marked(record)

    @contextmanager
    def _marked(self, record: RecordInfo) -> Iterator[list[tuple[str, bytes]]]:
        token = _MARK.set(f"{record.topic}@{record.offset}")
        try:
            yield [("mark", _MARK.get().encode())]
        finally:
            _MARK.reset(token)


_MARK: ContextVar[str] = ContextVar("mark", default="none")


@pytest.mark.parametrize("kind", ["plain", "threads", "async"])
def test_middleware_context_spans_the_call_of_every_kind_of_processor(kind: str) -> None:
    app = _app()
    app.middleware.append(_Marking())
    if kind == "async":

        @app.processor(input="in", output="out")
        async def call(event: dict[str, Any]) -> dict[str, Any]:
            return {"n": event["n"], "mark": _MARK.get()}
    else:

        @app.processor(input="in", output="out", concurrency=4 if kind == "threads" else 1)
        def call(event: dict[str, Any]) -> dict[str, Any]:
            return {"n": event["n"], "mark": _MARK.get()}

    driver = TestDriver(app)
    driver.send("in", {"n": 1}, key="a")
    driver.send("in", {"n": 2}, key="b")
    records = driver.records("out")
    assert [r.value for r in records] == [{"n": 1, "mark": "in@0"}, {"n": 2, "mark": "in@1"}]
    assert [r.headers["mark"] for r in records] == [b"in@0", b"in@1"]


def test_a_concurrent_retry_holds_its_key_and_lets_other_keys_go_on() -> None:
    app = _app()
    calls: list[tuple[str, int]] = []

    retries = RetryPolicy(attempts=3, backoff=2.0, jitter=0)

    @app.processor(input="in", output="out", concurrency=4, retries=retries)
    def flaky(event: dict[str, Any]) -> dict[str, Any]:
        calls.append((event["k"], event["n"]))
        if event["k"] == "a" and calls.count((event["k"], event["n"])) < 3:
            raise ConnectionError("try again")
        return event

    driver = TestDriver(app)
    for n, key in enumerate("aab"):  # taken together, as a worker's batch
        driver.engine.store("in", key.encode(), orjson.dumps({"k": key, "n": n}), None, None, 0)
    driver.advance(0)
    # b goes on while a's first record waits for its retries; a's second waits behind it.
    assert [(v["k"], v["n"]) for v in driver.values("out")] == [("b", 2), ("a", 0), ("a", 1)]
    assert calls.index(("b", 2)) < calls.index(("a", 1))
    assert driver.engine.waits == [("flaky", 1, 2.0), ("flaky", 2, 4.0)] * 2  # each a


@pytest.mark.timeout(20)
@pytest.mark.parametrize("start_ms", [1_767_225_600_022, 1_767_225_600_049])
def test_a_retry_after_a_fraction_of_a_second_comes_due_on_the_virtual_clock(
    start_ms: int,
) -> None:
    # At these clocks, 0.2 s and 0.15 s later in seconds is a float just past a whole
    # millisecond: the engine's clock must move past it, or it waits for ever.
    app = _app()
    tries: list[int] = []

    retries = RetryPolicy(attempts=3, backoff=0.15, multiplier=0.2 / 0.15, jitter=0)

    @app.processor(input="in", output="out", concurrency=2, retries=retries)
    def once_more(event: dict[str, Any]) -> dict[str, Any]:
        tries.append(event["n"])
        if len(tries) < 3:
            raise ConnectionError("again")
        return event

    engine = MemoryEngine(app, Settings.from_env({}), start_ms=start_ms)
    engine.append("in", b"k", orjson.dumps({"n": 1}))
    assert tries == [1, 1, 1]
    assert [orjson.loads(r.value() or b"") for r in engine.records("out")] == [{"n": 1}]
