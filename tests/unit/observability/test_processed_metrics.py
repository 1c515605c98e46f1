"""Every kind of function counts in ``on_processed`` (and so in
``streamkit_records_processed_total`` and ``streamkit_process_duration_seconds``):
processors, aggregates (gathers, joins and workflows are aggregates) and windows, with how
each record ended."""

from typing import Any

from streamkit import App, Middleware
from streamkit.testing import TestDriver

T0 = 1_767_225_600_000


class _Calls(Middleware):
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def on_processed(self, processor: str, seconds: float, outcome: str) -> None:
        assert seconds >= 0
        self.calls.append((processor, outcome))


def test_windows_and_aggregates_count_like_processors() -> None:
    app = App("m")
    app.topic("clicks", partitions=1, keyed_by="page")
    app.topic("counts", partitions=1)
    app.topic("out", partitions=1)
    calls = _Calls()
    app.middleware.append(calls)

    @app.window(input="clicks", store="per-minute", key="page", size="1m", output="counts")
    def per_minute(n: int | None, click: dict[str, Any]) -> int:
        return (n or 0) + 1

    @app.aggregate(input="clicks", store="totals", key="page")
    def totals(n: int | None, click: dict[str, Any]) -> int:
        if click.get("bad"):
            raise ValueError("bad click")
        return (n or 0) + 1

    @app.processor(input="clicks", output="out")
    def echo(click: dict[str, Any]) -> dict[str, Any]:
        return click

    driver = TestDriver(app)
    driver.send("clicks", {"page": "a"}, key="a", timestamp=T0 + 120_000)
    driver.send("clicks", {"page": "a", "bad": True}, key="a", timestamp=T0)  # late window
    assert calls.calls == [
        ("echo", "emitted"),
        ("totals", "emitted"),
        ("per_minute", "emitted"),
        ("echo", "emitted"),
        ("totals", "failed"),
        ("per_minute", "late"),
    ]
