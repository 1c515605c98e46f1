"""Queue processors refuse at start-up what a share group cannot keep: state, order,
transactions, retry topics and concurrency, and a mix with consumer-group processors."""

from typing import Any

import pytest

from streamkit import App, Dedupe
from streamkit.errors import ConfigError
from streamkit.runtime.queues import check_queues, is_queue_app


def job(event: Any) -> Any:
    return event


def test_a_plain_queue_app_passes() -> None:
    app = App("jobs")
    app.processor(input="jobs", output="done", queue=True, retries=3)(job)
    check_queues(app)
    assert is_queue_app(app)


def test_a_consumer_group_app_is_not_a_queue_app() -> None:
    app = App("jobs")
    app.processor(input="jobs", output="done")(job)
    check_queues(app)
    assert not is_queue_app(app)


def test_queue_and_consumer_group_processors_in_one_app_are_refused() -> None:
    app = App("jobs")
    app.processor(input="jobs", output="done", queue=True)(job)
    app.processor(input="done", output="audit", name="audit")(job)
    with pytest.raises(ConfigError, match="mixes queue processors \\(job\\) with audit"):
        check_queues(app)


def test_a_queue_app_with_an_aggregate_is_refused() -> None:
    app = App("jobs")
    app.processor(input="jobs", output="done", queue=True)(job)
    app.aggregate(input="done", store="totals")(lambda state, event: (state or 0) + 1)
    with pytest.raises(ConfigError, match="aggregate"):
        check_queues(app)


def test_exactly_once_queue_processors_are_refused() -> None:
    app = App("jobs", guarantee="exactly_once")
    app.processor(input="jobs", output="done", queue=True)(job)
    with pytest.raises(ConfigError, match="not part of a Kafka transaction"):
        check_queues(app)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"retry_topics": ["1s"]}, "retry_topics="),
        ({"dedupe": Dedupe(field="id", window="1h")}, "dedupe="),
        ({"concurrency": 8}, "concurrency or async"),
    ],
)
def test_what_needs_order_or_state_is_refused_on_a_queue_processor(
    options: dict[str, Any], named: str
) -> None:
    app = App("jobs")
    app.processor(input="jobs", output="done", queue=True, **options)(job)
    with pytest.raises(ConfigError, match=f"job is a queue processor and cannot take {named}"):
        check_queues(app)
