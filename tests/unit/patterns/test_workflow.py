"""Durable workflows through TestDriver: steps in order, retries on durable timers, sagas
compensated in reverse order, waits with buffered events and timeouts, one terminal
state per instance, duplicate starts reported; bad definitions refused."""

import asyncio
import time
from typing import Any

import orjson
import pytest

from streamkit import END, App, ConfigError, Goto, Middleware, RetryPolicy, StepFailed
from streamkit.testing import TestDriver

FAST = RetryPolicy(attempts=3, backoff=1.0, multiplier=2.0, jitter=0)


def _app(**workflow: Any) -> tuple[App, Any]:
    app = App("shop")
    for name in ("orders", "answers", "done", "effects"):
        app.topic(name, partitions=2)
    options = {
        "start": "orders",
        "id": "order_id",
        "events": ["answers"],
        "output": "done",
        "outputs": ["effects"],
        **workflow,
    }
    return app, app.workflow("shop", **options)


def _saga(fail_at: str | None = None) -> App:
    """Three steps, each with a compensation; ``fail_at`` fails for good."""
    app, flow = _app()

    def step(name: str) -> Any:
        def run(data: dict[str, Any], ctx: Any) -> dict[str, Any]:
            if fail_at == name:
                raise StepFailed(f"{name} says no")
            ctx.emit("effects", {"do": name})
            return {**data, "trail": [*data.get("trail", []), name]}

        def undo(output: dict[str, Any], ctx: Any) -> None:
            ctx.emit("effects", {"undo": name, "saw": output["trail"]})

        run.__name__ = name
        flow.step(compensate=undo)(run)

    for name in ("reserve", "charge", "ship"):
        step(name)
    return app


def _ends(driver: TestDriver) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for record in driver.records("done"):
        found.setdefault(record.key, []).append(record.value["status"])
    return found


def test_steps_run_in_order_and_the_instance_completes_once() -> None:
    driver = TestDriver(_saga())
    driver.send("orders", {"order_id": "o1"}, key="whatever")
    (done,) = driver.records("done")
    assert done.key == "o1"
    assert done.value["status"] == "completed"
    assert done.value["result"] == {"order_id": "o1", "trail": ["reserve", "charge", "ship"]}
    assert driver.values("effects") == [{"do": "reserve"}, {"do": "charge"}, {"do": "ship"}]
    state = driver.state("shop", "o1")
    assert state["status"] == "completed"
    steps = [(h.get("step"), h["kind"], h.get("outcome")) for h in state["history"]]
    assert steps == [
        (None, "start", None),
        ("reserve", "step", "completed"),
        ("charge", "step", "completed"),
        ("ship", "step", "completed"),
    ]


@pytest.mark.parametrize(
    ("fail_at", "undone"),
    [
        ("reserve", []),
        ("charge", ["reserve"]),
        ("ship", ["charge", "reserve"]),
    ],
)
def test_a_failed_step_compensates_exactly_the_completed_steps_in_reverse(
    fail_at: str, undone: list[str]
) -> None:
    driver = TestDriver(_saga(fail_at))
    driver.send("orders", {"order_id": "o1"})
    effects = driver.values("effects")
    done = [e["do"] for e in effects if "do" in e]
    assert [e["undo"] for e in effects if "undo" in e] == undone == list(reversed(done))
    for effect in effects:  # a compensation gets its own step's output
        if "undo" in effect:
            assert effect["saw"][-1] == effect["undo"]
    (end,) = driver.values("done")
    assert end["status"] == ("compensated" if undone else "failed")
    assert end["error"] == f"step {fail_at} failed: StepFailed: {fail_at} says no"


def test_a_failing_step_is_retried_on_a_durable_timer_then_compensated() -> None:
    app, flow = _app(retries=FAST)
    calls: list[int] = []

    @flow.step(compensate=lambda data: None)
    def first(data: Any) -> Any:
        return data

    @flow.step()
    def flaky(data: Any, ctx: Any) -> Any:
        calls.append(ctx.attempt)
        if data["fails"] >= ctx.attempt:
            raise ConnectionError(f"attempt {ctx.attempt}")
        return {"ok": ctx.attempt}

    driver = TestDriver(app)
    driver.send("orders", {"order_id": "ok", "fails": 2})
    driver.send("orders", {"order_id": "bad", "fails": 5})
    assert calls == [1, 1]
    assert driver.values("done") == []
    assert driver.state("shop", "ok")["status"] == "retrying"
    driver.advance(1.1)  # the first wait: 1 s
    assert calls == [1, 1, 2, 2]
    driver.advance(1.5)
    assert calls == [1, 1, 2, 2]
    assert driver.values("done") == []
    driver.advance(0.6)
    assert calls == [1, 1, 2, 2, 3, 3]
    assert {v["id"]: (v["status"], v["result"]) for v in driver.values("done")} == {
        "ok": ("completed", {"ok": 3}),
        "bad": ("compensated", None),
    }
    bad = driver.state("shop", "bad")
    assert bad["error"] == "step flaky failed: ConnectionError: attempt 3"
    outcomes = [h["outcome"] for h in bad["history"] if h.get("step") == "flaky"]
    assert outcomes == ["retrying", "retrying", "failed"]


def test_a_duplicate_start_is_reported_and_runs_nothing() -> None:
    app, flow = _app()
    runs: list[str] = []
    flow.step(name="run")(lambda data: runs.append(data["order_id"]))
    driver = TestDriver(app)
    driver.send("orders", {"order_id": "o1", "n": 1})
    driver.send("orders", {"order_id": "o1", "n": 2})
    assert runs == ["o1"]
    assert len(driver.values("done")) == 1
    state = driver.state("shop", "o1")
    assert state["duplicates"] == 1
    assert state["history"][-1]["kind"] == "duplicate start"
    assert state["history"][-1]["input"] == {"order_id": "o1", "n": 2}


def _approvals() -> App:
    app, flow = _app(buffer_ttl="1m")

    @flow.wait(
        "answers", timeout="30s", on_timeout="remind", when=lambda d: d["big"], next="finish"
    )
    def approve(data: dict[str, Any], answer: dict[str, Any]) -> Any:
        if not answer["ok"]:
            raise StepFailed("rejected")
        return {**data, "by": answer["by"]}

    @flow.step(next="second_look")
    def remind(data: Any, ctx: Any) -> None:
        ctx.emit("effects", {"remind": ctx.id})

    @flow.wait("answers", timeout="30s", on_timeout="fail", next="finish")
    def second_look(data: dict[str, Any], answer: dict[str, Any]) -> Any:
        return {**data, "by": answer["by"], "late": True}

    @flow.step()
    def finish(data: Any) -> Any:
        return data

    return app


def test_a_wait_runs_with_its_event_and_is_skipped_when_its_condition_fails() -> None:
    driver = TestDriver(_approvals())
    driver.send("orders", {"order_id": "small", "big": False})
    driver.send("orders", {"order_id": "big", "big": True})
    assert _ends(driver) == {"small": ["completed"]}
    assert driver.state("shop", "big")["status"] == "waiting"
    driver.send("answers", {"order_id": "big", "ok": True, "by": "ann"}, key="any")
    assert _ends(driver) == {"small": ["completed"], "big": ["completed"]}
    assert driver.values("done")[-1]["result"] == {"order_id": "big", "big": True, "by": "ann"}
    driver.send("answers", {"order_id": "big", "ok": True, "by": "bob"})  # ended: ignored
    assert driver.state("shop", "big")["history"][-1]["kind"] == "event ignored"
    assert len(driver.values("done")) == 2


def test_an_event_before_its_instance_is_kept_for_it() -> None:
    driver = TestDriver(_approvals())
    driver.send("answers", {"order_id": "early", "ok": True, "by": "eve"})
    assert driver.state("shop", "early")["status"] == "pending"
    driver.advance(50)  # within buffer_ttl
    driver.send("orders", {"order_id": "early", "big": True})
    (end,) = driver.values("done")
    assert (end["status"], end["result"]["by"]) == ("completed", "eve")
    driver.advance(120)  # the expiry timer was cancelled when it started
    assert driver.dead_letters() == []


def test_events_for_an_instance_that_never_starts_go_to_the_dlq_after_the_ttl() -> None:
    driver = TestDriver(_approvals())
    driver.send("answers", {"order_id": "ghost", "ok": True, "by": "x"})
    driver.send("answers", {"order_id": "ghost", "ok": False, "by": "y"})
    driver.advance(61)
    (letter,) = driver.dead_letters()
    assert letter.error_class == "streamkit.errors.WorkflowExpiredError"
    events = orjson.loads(letter.value)["timer"]["parts"]
    assert [e["event"]["by"] for e in events] == ["x", "y"]
    assert driver.state("shop", "ghost") is None
    driver.send("orders", {"order_id": "ghost", "big": False})  # a start later: a new one
    assert _ends(driver) == {"ghost": ["completed"]}


def test_a_wait_times_out_to_its_escalation_then_to_its_own_timeout() -> None:
    driver = TestDriver(_approvals())
    driver.send("orders", {"order_id": "late", "big": True})
    driver.send("orders", {"order_id": "never", "big": True})
    driver.advance(31)
    assert driver.values("effects") == [{"remind": "late"}, {"remind": "never"}]
    driver.send("answers", {"order_id": "late", "ok": True, "by": "boss"})
    driver.advance(31)
    ends = {v["id"]: v for v in driver.values("done")}
    assert ends["late"]["status"] == "completed"
    assert ends["late"]["result"]["late"] is True
    assert ends["never"]["status"] == "failed"
    assert ends["never"]["error"] == "step second_look timed out waiting for answers after 30s"
    assert _ends(driver) == {"late": ["completed"], "never": ["failed"]}


def _written_unread(driver: TestDriver, topic: str, value: Any, timestamp: int) -> None:
    """A record in Kafka that the worker has not read yet (it was down, or behind)."""
    raw = driver.engine.pipeline.serdes[topic].value.encode(value)
    driver.engine.store(topic, None, raw, [], timestamp)


def _wait_task(driver: TestDriver, instance: str) -> Any:
    return next(
        t
        for t in driver.engine.tasks.values()
        if t.state is not None and t.state.get("shop", instance, 0) is not None
    )


def test_an_answer_written_before_the_deadline_wins_however_late_it_is_read() -> None:
    driver = TestDriver(_approvals())
    driver.send("orders", {"order_id": "big", "big": True})
    started = driver.now
    _written_unread(
        driver, "answers", {"order_id": "big", "ok": True, "by": "ann"}, started + 20_000
    )
    task = _wait_task(driver, "big")
    assert not task.wall_due(started + 40_000)  # an unread record holds the timeout back
    driver.advance(40, clock="wall")  # read first, then nothing is due any more
    assert _ends(driver) == {"big": ["completed"]}
    assert driver.values("effects") == []  # no reminder


def test_an_answer_written_after_the_deadline_loses_however_early_it_is_read() -> None:
    driver = TestDriver(_approvals())
    driver.send("orders", {"order_id": "big", "big": True})
    started = driver.now
    driver.send("answers", {"order_id": "big", "ok": True, "by": "ann"}, timestamp=started + 31_000)
    # The wait timed out first (its escalation ran), then the answer met the second wait.
    assert driver.values("effects") == [{"remind": "big"}]
    (end,) = driver.values("done")
    assert (end["status"], end["result"]["late"]) == ("completed", True)


def test_goto_branches_and_a_goto_elsewhere_fails_the_instance() -> None:
    app, flow = _app()

    @flow.step(next=["cheap", "dear"])
    def route(data: dict[str, Any]) -> Goto:
        return Goto(data["to"], {"went": data["to"]})

    @flow.step(next=END)
    def cheap(data: Any) -> Any:
        return data

    @flow.step(next=END)
    def dear(data: Any) -> Any:
        return data

    app.validate()
    driver = TestDriver(app)
    driver.send("orders", {"order_id": "a", "to": "dear"})
    driver.send("orders", {"order_id": "b", "to": "cheap"})
    driver.send("orders", {"order_id": "c", "to": "route"})
    ends = {v["id"]: v for v in driver.values("done")}
    assert ends["a"]["result"] == {"went": "dear"}
    assert ends["b"]["result"] == {"went": "cheap"}
    assert ends["c"]["status"] == "failed"
    assert "went to route, which is not in its next= ['cheap', 'dear']" in ends["c"]["error"]


def test_slow_steps_time_out_async_ones_are_cut_off() -> None:
    app, flow = _app(retries=RetryPolicy(attempts=2, backoff=1, jitter=0))

    @flow.step(timeout=0.05)
    async def slow_async(data: Any) -> Any:
        await asyncio.sleep(data["sleep"])
        return data

    @flow.step(timeout=0.05)
    def slow_sync(data: Any, ctx: Any) -> Any:
        ctx.emit("effects", {"from": ctx.id})
        time.sleep(data["sync_sleep"])
        return data

    driver = TestDriver(app)
    driver.send("orders", {"order_id": "fast", "sleep": 0, "sync_sleep": 0})
    started = time.perf_counter()
    driver.send("orders", {"order_id": "cut", "sleep": 10, "sync_sleep": 0})
    assert time.perf_counter() - started < 2  # cut off at 0.05 s, not 10
    driver.send("orders", {"order_id": "dropped", "sleep": 0, "sync_sleep": 0.1})
    driver.advance(1.5)
    ends = {v["id"]: v for v in driver.values("done")}
    assert ends["fast"]["status"] == "completed"
    assert ends["cut"]["error"] == (
        "step slow_async failed: StepTimeoutError: step slow_async took longer than its "
        "timeout of 0.05s"
    )
    assert ends["dropped"]["status"] == "failed"
    assert "longer than its timeout of 0.05s (its result is dropped)" in ends["dropped"]["error"]
    assert driver.values("effects") == [{"from": "fast"}]  # the late one's emits are dropped


def test_a_result_that_is_not_json_fails_the_step_without_retries() -> None:
    app, flow = _app(retries=3)
    calls: list[int] = []

    @flow.step()
    def odd(data: Any) -> Any:
        calls.append(1)
        return {"when": object()}

    driver = TestDriver(app)
    driver.send("orders", {"order_id": "o"})
    (end,) = driver.values("done")
    assert end["status"] == "failed"
    assert "returned a value that is not JSON" in end["error"]
    assert calls == [1]


def test_an_emit_to_an_undeclared_topic_fails_the_step() -> None:
    app, flow = _app()
    flow.step()(_emit_to("orders"))
    driver = TestDriver(app)
    driver.send("orders", {"order_id": "o"})
    (end,) = driver.values("done")
    assert "emits to orders, which is not one of its outputs ['effects']" in end["error"]


def _emit_to(topic: str) -> Any:
    def emitting(data: Any, ctx: Any) -> None:
        ctx.emit(topic, data)

    return emitting


def test_more_buffered_events_than_buffer_max_go_to_the_dlq() -> None:
    app, flow = _app(buffer_max=2)
    flow.step()(_emit_to("effects"))
    driver = TestDriver(app)
    for n in range(3):
        driver.send("answers", {"order_id": "flood", "n": n})
    (letter,) = driver.dead_letters()
    assert (
        "already holds 2 events it does not wait for (buffer_max)"
        in letter.error["exception.message"]
    )
    # (from the workflow's repartition topic: the event with the topic it came from)
    assert orjson.loads(letter.value) == {"input": "answers", "part": {"order_id": "flood", "n": 2}}


def test_every_step_call_is_reported_to_middleware() -> None:
    seen: list[tuple[str, str, str]] = []

    class Steps(Middleware):
        def on_step(self, workflow: str, step: str, outcome: str, seconds: float) -> None:
            assert seconds >= 0
            seen.append((workflow, step, outcome))

    app = _saga("ship")
    app.middleware.append(Steps())
    driver = TestDriver(app)
    driver.send("orders", {"order_id": "o1"})
    assert seen == [
        ("shop", "start", "started"),
        ("shop", "reserve", "completed"),
        ("shop", "charge", "completed"),
        ("shop", "ship", "failed"),
        ("shop", "charge.compensation", "compensated"),
        ("shop", "reserve.compensation", "compensated"),
        ("shop", "end", "compensated"),
    ]


def test_history_is_bounded() -> None:
    app, flow = _app(history=3)
    for name in ("a", "b", "c", "d", "e"):
        flow.step(name=name)(lambda data: data)
    driver = TestDriver(app)
    driver.send("orders", {"order_id": "o"})
    state = driver.state("shop", "o")
    assert [h["step"] for h in state["history"]] == ["c", "d", "e"]
    assert state["dropped"] == 3


def _refused(build: Any, match: str) -> None:
    app, flow = _app()
    build(flow)
    with pytest.raises(ConfigError, match=match):
        app.validate()


def _ok(data: Any) -> Any:
    return data


def test_bad_definitions_are_refused_with_one_clear_line() -> None:
    _refused(lambda f: None, "workflow shop declares no steps")
    _refused(
        lambda f: f.step(name="a", next="nowhere")(_ok),
        "step a goes to nowhere, which it does not declare",
    )
    _refused(
        lambda f: (f.step(name="a")(_ok), f.compensation("ghost")(_ok)),
        "compensation _ok is for step 'ghost', which it does not declare",
    )
    _refused(
        lambda f: (f.step(name="a", next="b")(_ok), f.step(name="b", next="a")(_ok)),
        r"step\(s\) a, b are in a cycle without an exit",
    )
    _refused(
        lambda f: (f.step(name="a", next=END)(_ok), f.step(name="b")(_ok)),
        r"step\(s\) b are never reached from a",
    )
    _refused(
        lambda f: (f.step(name="a", compensate=_ok)(_ok), f.compensation("a")(_ok)),
        "step a has two compensations",
    )
    with pytest.raises(ConfigError, match="wait x is for orders, which is not one of its events"):
        _app()[1].wait("orders", timeout="1s", name="x")(lambda d, e: d)
    with pytest.raises(ConfigError, match=r"must take \(data, event\) or \(data, event, ctx\)"):
        _app()[1].wait("answers", timeout="1s", name="x")(_ok)
    with pytest.raises(ConfigError, match="is its start topic and cannot also be one"):
        _app(events=["orders"])


def test_a_cycle_with_a_timeout_exit_is_allowed() -> None:
    app, flow = _app()
    flow.step(name="ask", next="listen")(_ok)
    flow.wait("answers", timeout="1s", name="listen", next="ask", on_timeout="compensate")(
        lambda d, e: d
    )
    app.validate()


def test_a_when_that_raises_fails_the_instance_instead_of_its_record() -> None:
    app, flow = _app()
    flow.step(name="first", compensate=lambda data: None)(_ok)
    flow.wait("answers", timeout="1s", name="gate", when=lambda d: d["missing"])(lambda d, e: d)
    driver = TestDriver(app)
    driver.send("orders", {"order_id": "o"})
    (end,) = driver.values("done")
    assert end["status"] == "compensated"
    assert end["error"] == "the when= of step gate raised KeyError: 'missing'"
    assert driver.dead_letters() == []
