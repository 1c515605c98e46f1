"""Retries, dead letters, retry topics and parking, in memory (TestDriver)."""

import random
from typing import Any

import pytest

from streamkit import App, Emit
from streamkit.errors import ConfigError, ProcessingFailedError
from streamkit.failures import Retry, RetryPolicy
from streamkit.failures.dead_letter import REDRIVE_COUNT
from streamkit.settings import parse_duration
from streamkit.testing import TestDriver
from streamkit.topology import Topology


def _app(**kwargs: Any) -> App:
    app = App("t", **kwargs)
    app.topic("in", partitions=2)
    app.topic("out", partitions=2)
    return app


def test_a_function_failing_twice_then_succeeding_is_called_three_times_with_backoff() -> None:
    app = _app()
    calls: list[int] = []

    @app.processor(input="in", output="out", retries=RetryPolicy(attempts=3, backoff=0.2, jitter=0))
    def flaky(event: dict[str, Any]) -> dict[str, Any]:
        calls.append(event["n"])
        if len(calls) < 3:
            raise ConnectionError("downstream busy")
        return event

    driver = TestDriver(app)
    driver.send("in", {"n": 1}, key="k")
    assert calls == [1, 1, 1]
    assert driver.values("out") == [{"n": 1}]  # produced once
    assert driver.waits == [("flaky", 1, 0.2), ("flaky", 2, 0.4)]
    assert driver.dead_letters() == []


def test_retry_budget_spent_sends_the_record_to_the_dlq_with_the_attempts() -> None:
    app = _app(retry=RetryPolicy(attempts=2, backoff=0, jitter=0))

    @app.processor(input="in", output="out")
    def broken(event: dict[str, Any]) -> dict[str, Any]:
        raise TimeoutError("still down")

    driver = TestDriver(app)
    driver.send("in", {"n": 1}, key="k", headers={"trace": "abc"})
    (letter,) = driver.dead_letters("in")
    assert letter.error["attempts"] == "2"
    assert letter.error["exception.class.name"] == "builtins.TimeoutError"
    assert letter.error["exception.message"] == "still down"
    assert "Traceback" in letter.error["exception.stacktrace"]
    assert letter.error["processor"] == "broken"
    assert letter.error["stage"] == "process"
    assert letter.error["app"] == "t"
    assert letter.error["group"] == "t"
    assert letter.headers == (("trace", b"abc"),)  # the original headers, byte for byte
    assert letter.value == b'{"n":1}'


def test_non_retryable_exceptions_go_to_the_dlq_at_once() -> None:
    app = _app()

    @app.processor(
        input="in", output="out", retries=RetryPolicy(attempts=5, give_up_on=(ValueError,))
    )
    def strict(event: dict[str, Any]) -> dict[str, Any]:
        raise ValueError("amount must be positive")

    driver = TestDriver(app)
    driver.send("in", {"n": 1}, key="k")
    assert driver.waits == []
    assert driver.dead_letters()[0].error["attempts"] == "1"


def test_retry_signal_sets_the_delay() -> None:
    app = _app()
    calls = []

    @app.processor(input="in", output="out", retries=1)
    def later(event: dict[str, Any]) -> dict[str, Any]:
        calls.append(1)
        if len(calls) == 1:
            raise Retry("not yet", delay=7.5)
        return event

    driver = TestDriver(app)
    driver.send("in", {"n": 1}, key="k")
    assert driver.waits == [("later", 1, 7.5)]
    assert driver.values("out") == [{"n": 1}]


def test_contract_violation_on_output_is_dead_lettered_as_encode_failure(tmp_path: Any) -> None:
    (tmp_path / "Out.avsc").write_text(
        '{"type": "record", "name": "t.Out", "fields": [{"name": "x", "type": "int"}]}'
    )
    app = App("t", schemas=tmp_path)
    app.topic("in")
    app.topic("out", value="Out")

    @app.processor(input="in", output="out")
    def wrong(event: dict[str, Any]) -> dict[str, Any]:
        return {"x": "not an int"}

    driver = TestDriver(app)
    driver.send("in", {"n": 1}, key="k")
    (letter,) = driver.dead_letters()
    assert letter.error["stage"] == "encode"
    assert letter.error["exception.class.name"] == "streamkit.errors.ContractError"
    assert "t.Out" in letter.error["exception.message"]


def test_without_dead_letters_a_failure_stops_the_worker() -> None:
    app = _app(dead_letters=False)

    @app.processor(input="in", output="out")
    def broken(event: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("boom")

    with pytest.raises(ProcessingFailedError, match=r"RuntimeError: boom"):
        TestDriver(app).send("in", {"n": 1}, key="k")
    assert [t.name for t in Topology(app).failure_topics()] == []


def test_retry_topics_carry_the_record_then_the_dlq_takes_it() -> None:
    app = _app()
    attempts: list[int] = []

    @app.processor(input="in", output="out", retry_topics=["1s", "10s"])
    def slow(event: dict[str, Any]) -> dict[str, Any]:
        attempts.append(1)
        raise ConnectionError("nope")

    driver = TestDriver(app)
    driver.send("in", {"n": 1}, key="k")
    assert len(attempts) == 3
    assert len(driver.records("t-slow-retry-1")) == 1
    assert len(driver.records("t-slow-retry-2")) == 1
    (letter,) = driver.dead_letters("in")
    assert letter.error["attempts"] == "3"
    assert letter.error["topic"] == "in"  # the origin, not the retry topic
    assert letter.value == b'{"n":1}'
    assert [h for h, _ in letter.headers if h.startswith("__streamkit.retry.")] == []
    assert [round(w) for _, _, w in driver.waits] == [1, 10]


def test_retry_topics_deliver_once_the_function_recovers() -> None:
    app = _app()
    attempts: list[int] = []

    @app.processor(input="in", output="out", retry_topics=["1s"])
    def recovers(event: dict[str, Any]) -> dict[str, Any]:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("nope")
        return event

    driver = TestDriver(app)
    driver.send("in", {"n": 1}, key="k")
    assert driver.values("out") == [{"n": 1}]
    assert driver.dead_letters() == []


def test_a_record_failing_after_max_redrives_is_parked() -> None:
    app = _app(max_redrives=2)

    @app.processor(input="in", output="out")
    def broken(event: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("still broken")

    driver = TestDriver(app)
    driver.send("in", {"n": 1}, key="k", headers={REDRIVE_COUNT: "1"})
    driver.send("in", {"n": 2}, key="k", headers={REDRIVE_COUNT: "2"})
    letters = {letter.dlq_topic: letter for letter in driver.dead_letters()}
    assert set(letters) == {"t-in-dlq", "t-in-parked"}
    assert letters["t-in-parked"].value == b'{"n":2}'
    assert letters["t-in-parked"].redrives == 2


def test_undeclared_emit_target_is_dead_lettered() -> None:
    app = _app()

    @app.processor(input="in", output="out")
    def stray(event: dict[str, Any]) -> Emit:
        return Emit("elsewhere", event)

    driver = TestDriver(app)
    driver.send("in", {"n": 1}, key="k")
    assert "not among its outputs" in driver.dead_letters()[0].error["exception.message"]


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    policy = RetryPolicy(attempts=10, backoff=1, multiplier=2, max_delay=5, jitter=0.2)
    rng = random.Random(1)
    delays = [policy.delay(n, rng) for n in range(1, 6)]
    assert 0.8 <= delays[0] <= 1.2
    assert 1.6 <= delays[1] <= 2.4
    assert 3.2 <= delays[2] <= 4.8
    assert all(d <= 5 for d in delays)
    assert RetryPolicy(backoff=1, jitter=0).delay(3) == 4


def test_bad_policies_and_durations_are_refused() -> None:
    with pytest.raises(ConfigError, match="attempts must be >= 1"):
        RetryPolicy(attempts=0)
    with pytest.raises(ConfigError, match="not a duration"):
        parse_duration("ten seconds")
    assert parse_duration("250ms") == 0.25
    assert parse_duration("2m") == 120


def test_failure_topics_are_declared_with_the_inputs_partitions() -> None:
    app = _app()

    @app.processor(input="in", output="out", retry_topics=["5s"])
    def f(event: Any) -> Any:
        return event

    topics = {t.name: t.partitions for t in Topology(app).failure_topics()}
    assert topics == {"t-in-dlq": 2, "t-in-parked": 2, "t-f-retry-1": 2}
    assert "t-f-retry-1" in Topology(app).consumed()
