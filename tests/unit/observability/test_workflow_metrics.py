"""A workflow's step calls are counted per step and outcome in the worker's Prometheus
registry, with their durations (a TestDriver run through the same middleware)."""

from prometheus_client.parser import text_string_to_metric_families

from processors import fulfilment
from streamkit.observability.metrics import PrometheusMetrics
from streamkit.testing import TestDriver


def test_step_calls_are_counted_by_step_and_outcome() -> None:
    metrics = PrometheusMetrics("fulfilment", "w0")
    fulfilment.app.middleware.append(metrics)
    try:
        driver = TestDriver(fulfilment.app)
        order = {"sku": "s", "quantity": 1, "total_cents": 100, "card": "ok"}
        driver.send("fulfilment.orders", {**order, "order_id": "a"})
        driver.send("fulfilment.orders", {**order, "order_id": "b", "card": "declined"})
    finally:
        fulfilment.app.middleware.remove(metrics)
    samples = {
        (s.labels["step"], s.labels["outcome"]): s.value
        for family in text_string_to_metric_families(metrics.exposition().decode())
        if family.name == "streamkit_workflow_steps"
        for s in family.samples
        if s.name == "streamkit_workflow_steps_total"
    }
    assert samples == {
        ("start", "started"): 2,
        ("reserve_stock", "completed"): 2,
        ("approval", "skipped"): 2,
        ("charge_payment", "completed"): 1,
        ("charge_payment", "failed"): 1,
        ("ship", "completed"): 1,
        ("reserve_stock.compensation", "compensated"): 1,
        ("end", "completed"): 1,
        ("end", "compensated"): 1,
    }
    counts = {
        s.labels["step"]: s.value
        for family in text_string_to_metric_families(metrics.exposition().decode())
        if family.name == "streamkit_workflow_step_duration_seconds"
        for s in family.samples
        if s.name.endswith("_count")
    }
    assert counts == {
        "reserve_stock": 2,
        "approval": 2,
        "charge_payment": 2,
        "ship": 1,
        "reserve_stock.compensation": 1,
    }
