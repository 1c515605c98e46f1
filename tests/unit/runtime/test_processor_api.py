"""The processor API: declarations, routing of return values, failures through the hook."""

from typing import Any

import pytest

from streamkit import App, Context, Emit
from streamkit.app import load_app
from streamkit.errors import ConfigError, ProcessingFailedError
from streamkit.failures.failure import Action, Decision, Failure, Stage
from streamkit.testing import TestDriver


def _app() -> App:
    app = App("t")
    app.topic("in")
    app.topic("out")
    app.topic("other")
    return app


def test_plain_value_goes_to_output_and_none_filters() -> None:
    app = _app()

    @app.processor(input="in", output="out")
    def double(event: dict[str, Any]) -> dict[str, Any] | None:
        return None if event["n"] < 0 else {"n": event["n"] * 2}

    driver = TestDriver(app)
    driver.send("in", {"n": 2}, key="k")
    driver.send("in", {"n": -1}, key="k")
    assert driver.values("out") == [{"n": 4}]
    assert len(driver.filtered) == 1


def test_emits_fan_out_with_keys_and_headers() -> None:
    app = _app()

    @app.processor(input="in", output="out", outputs=["other"])
    def split(event: dict[str, Any]) -> list[Any]:
        return [event, Emit("other", {"copy": True}, key="new-key", headers={"h": "v"})]

    driver = TestDriver(app)
    driver.send("in", {"a": 1}, key="k1")
    (out,) = driver.records("out")
    (other,) = driver.records("other")
    assert (out.key, out.value) == ("k1", {"a": 1})
    assert (other.key, other.value, other.headers) == ("new-key", {"copy": True}, {"h": b"v"})


def test_context_gives_coordinates_key_and_headers() -> None:
    app = _app()
    seen: list[Context] = []

    @app.processor(input="in", output="out")
    def remember(event: dict[str, Any], ctx: Context) -> dict[str, Any]:
        seen.append(ctx)
        return {"offset": ctx.offset, "key": ctx.key, "h": (ctx.header("trace") or b"").decode()}

    driver = TestDriver(app)
    driver.send("in", {}, key="k", headers={"trace": "abc"})
    driver.send("in", {}, key="k")
    assert driver.values("out") == [
        {"offset": 0, "key": "k", "h": "abc"},
        {"offset": 1, "key": "k", "h": ""},
    ]
    assert seen[0].topic == "in"
    assert seen[0].processor == "remember"


def test_emit_to_an_undeclared_output_is_a_failure_with_coordinates() -> None:
    app = _app()

    @app.processor(input="in", output="out")
    def stray(event: dict[str, Any]) -> Emit:
        return Emit("other", event)

    app.dead_letters = False
    with pytest.raises(ProcessingFailedError, match=r"process failed for in\[\d\]@0 in processor "):
        TestDriver(app).send("in", {"x": 1}, key="k")


def test_exceptions_reach_the_failure_handler_which_may_skip() -> None:
    app = _app()

    @app.processor(input="in", output="out")
    def picky(event: dict[str, Any]) -> dict[str, Any]:
        if event.get("bad"):
            raise ValueError("bad event")
        return event

    failures: list[Failure] = []

    class Collect:
        def on_failure(self, failure: Failure) -> Decision:
            failures.append(failure)
            return Decision(Action.SKIP)

    driver = TestDriver(app, failure_handler=Collect())
    driver.send("in", {"bad": True}, key="k")
    driver.send("in", {"ok": True}, key="k")
    assert driver.values("out") == [{"ok": True}]
    (failure,) = failures
    assert failure.stage is Stage.PROCESS
    assert failure.processor == "picky"
    assert isinstance(failure.error, ValueError)
    assert "ValueError: bad event" in failure.describe()


@pytest.mark.parametrize(
    ("declare", "message"),
    [
        (lambda app: app.processor(input="in", output="in")(lambda e: e), "its own input"),
        (lambda app: app.processor(input="in")(lambda a, b, c: a), "must take"),
        (lambda app: app.topic("bad name"), "not a valid Kafka topic name"),
        (lambda app: app.topic("x", partitions=0), "must be >= 1"),
    ],
)
def test_bad_declarations_fail_fast(declare: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        declare(_app())


def test_undeclared_topics_are_refused_before_running() -> None:
    app = App("t")
    app.topic("in")

    @app.processor(input="in", output="nowhere")
    def f(event: Any) -> Any:
        return event

    with pytest.raises(ConfigError, match=r"uses topic nowhere, which app t does not declare"):
        app.validate()


def test_load_app_finds_the_single_app_or_the_named_one() -> None:
    assert load_app("processors.orders").name == "orders"
    assert load_app("processors.orders:app").name == "orders"
    with pytest.raises(ConfigError, match=r"processors.orders:nothing is not a streamkit App"):
        load_app("processors.orders:nothing")
    with pytest.raises(ConfigError, match=r"cannot import no_such_module_x"):
        load_app("no_such_module_x")


def test_group_id_defaults_to_the_app_name() -> None:
    assert App("orders").group_id == "orders"
    assert App("orders", group_id="orders-v2").group_id == "orders-v2"
