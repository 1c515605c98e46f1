"""Prometheus metrics of a worker.

Each worker process keeps its own registry and serves it on its own HTTP port
(``streamkit run --http-port P`` gives worker *i* port ``P + i``), so ``--workers N`` needs
no multiprocess mode: scrape every port (or use ``sum by`` over the ``worker`` label).

=============================================  =========  ================================
metric                                         type       labels
=============================================  =========  ================================
``streamkit_records_consumed_total``           counter    app, worker, topic
``streamkit_records_produced_total``           counter    app, worker, topic
``streamkit_records_processed_total``          counter    app, worker, processor, outcome
``streamkit_process_duration_seconds``         histogram  app, worker, processor
``streamkit_failures_total``                   counter    app, worker, stage, processor
``streamkit_retries_total``                    counter    app, worker, processor
``streamkit_dead_letters_total``               counter    app, worker, topic
``streamkit_rebalances_total``                 counter    app, worker, kind
``streamkit_late_records_total``               counter    app, worker, store
``streamkit_workflow_steps_total``             counter    app, worker, workflow, step,
                                                          outcome
``streamkit_workflow_step_duration_seconds``   histogram  app, worker, workflow, step
``streamkit_records_unmatched_total``          counter    app, worker, processor
``streamkit_assigned_partitions``              gauge      app, worker
``streamkit_blocked_partitions``               gauge      app, worker
``streamkit_consumer_lag``                     gauge      app, worker, topic, partition
``streamkit_last_poll_age_seconds``            gauge      app, worker
``streamkit_concurrent_calls``                 gauge      app, worker, processor
``streamkit_concurrent_pending``               gauge      app, worker, processor
=============================================  =========  ================================

``outcome`` is ``emitted``, ``filtered`` or ``failed``; ``kind`` is ``assigned``,
``revoked`` or ``lost``; a dead letter's ``topic`` is the input it came from. State
restore progress comes with stateful apps.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from streamkit.failures.failure import Action, Decision, Failure
from streamkit.processor import Middleware

if TYPE_CHECKING:
    from streamkit.engines.kafka import KafkaWorker
    from streamkit.engines.kafka.queue import QueueWorker

__all__ = ["PrometheusMetrics", "WorkerCollector"]

_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)


class PrometheusMetrics(Middleware):
    """Counts what flows through a worker into its own Prometheus registry."""

    def __init__(self, app: str, worker: str, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        base = {"app": app, "worker": worker}
        labels = ["app", "worker"]

        def counter(name: str, doc: str, *extra: str) -> Counter:
            return Counter(name, doc, [*labels, *extra], registry=self.registry)

        self._consumed = counter("streamkit_records_consumed", "Records consumed.", "topic")
        self._produced = counter("streamkit_records_produced", "Records acknowledged.", "topic")
        self._processed = counter(
            "streamkit_records_processed", "Processor calls by outcome.", "processor", "outcome"
        )
        self._duration = Histogram(
            "streamkit_process_duration_seconds",
            "Processor call duration.",
            [*labels, "processor"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self._failures = counter("streamkit_failures", "Record failures.", "stage", "processor")
        self._retries = counter("streamkit_retries", "Retries scheduled.", "processor")
        self._dead = counter("streamkit_dead_letters", "Records dead-lettered.", "topic")
        self._rebalances = counter("streamkit_rebalances", "Partition changes.", "kind")
        self._late = counter(
            "streamkit_late_records", "Records too late for their windows.", "store"
        )
        self._steps = counter(
            "streamkit_workflow_steps",
            "Workflow step calls by outcome.",
            "workflow",
            "step",
            "outcome",
        )
        self._step_duration = Histogram(
            "streamkit_workflow_step_duration_seconds",
            "Workflow step call duration.",
            [*labels, "workflow", "step"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self._base = base
        self._children: dict[tuple[str, ...], Any] = {}

    def _child(self, metric: Any, *values: str) -> Any:
        key = (metric._name, *values)
        child = self._children.get(key)
        if child is None:
            child = metric.labels(*self._base.values(), *values)
            self._children[key] = child
        return child

    def on_consumed(self, topic: str, count: int) -> None:
        self._child(self._consumed, topic).inc(count)

    def on_processed(self, processor: str, seconds: float, outcome: str) -> None:
        self._child(self._processed, processor, outcome).inc()
        self._child(self._duration, processor).observe(seconds)

    def on_failure(self, failure: Failure, decision: Decision) -> None:
        self._child(self._failures, failure.stage.value, failure.processor).inc()
        if decision.action is Action.RETRY:
            self._child(self._retries, failure.processor).inc()
        elif decision.action is Action.DEAD_LETTER:
            self._child(self._dead, failure.topic).inc()

    def on_produced(self, counts: Mapping[str, int]) -> None:
        for topic, count in counts.items():
            self._child(self._produced, topic).inc(count)

    def on_rebalance(self, kind: Literal["assigned", "revoked", "lost"], count: int) -> None:
        self._child(self._rebalances, kind).inc(count)

    def on_late(self, store: str, count: int) -> None:
        self._child(self._late, store).inc(count)

    def on_step(self, workflow: str, step: str, outcome: str, seconds: float) -> None:
        self._child(self._steps, workflow, step, outcome).inc()
        if step not in {"start", "end"}:
            self._child(self._step_duration, workflow, step).observe(seconds)

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)


class WorkerCollector(Collector):
    """Read from the worker when scraped: partitions, lag, poll age, concurrent calls,
    records kept from processors by their patterns."""

    def __init__(self, worker: KafkaWorker | QueueWorker) -> None:
        self.worker = worker

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        worker = self.worker
        base = [worker.app.name, worker.options.worker_id]
        unmatched = CounterMetricFamily(
            "streamkit_records_unmatched",
            "Records a processor's where= or where_headers= kept from it.",
            labels=["app", "worker", "processor"],
        )
        for name, count in sorted(worker.unmatched.items()):
            unmatched.add_metric([*base, name], count)
        yield unmatched
        worker_gauges = (
            ("streamkit_assigned_partitions", "Partitions assigned.", len(worker.assigned)),
            (
                "streamkit_blocked_partitions",
                "Partitions held for a retry or an unavailable DLQ.",
                worker.blocked_partitions,
            ),
            (
                "streamkit_worker_restarts",
                "How often the supervisor restarted this worker (a crash) before this process.",
                worker.options.restarts,
            ),
            (
                "streamkit_restoring_partitions",
                "Partitions whose stores are being restored from their changelogs now.",
                worker.restoring,
            ),
            (
                "streamkit_last_poll_age_seconds",
                "Seconds since the last poll.",
                time.monotonic() - worker.last_poll,
            ),
        )
        for name, doc, value in worker_gauges:
            gauge = GaugeMetricFamily(name, doc, labels=["app", "worker"])
            gauge.add_metric(base, value)
            yield gauge
        restored = CounterMetricFamily(
            "streamkit_restored_records",
            "Changelog records applied by restores since the worker started.",
            labels=["app", "worker"],
        )
        restored.add_metric(base, worker.restored_records)
        yield restored
        calls = GaugeMetricFamily(
            "streamkit_concurrent_calls",
            "Calls of a concurrent processor running now.",
            labels=["app", "worker", "processor"],
        )
        pending = GaugeMetricFamily(
            "streamkit_concurrent_pending",
            "Records of a concurrent processor taken and not yet done (queued, running, "
            "waiting for a retry).",
            labels=["app", "worker", "processor"],
        )
        for name, (running, waiting) in sorted(worker.concurrency_stats.items()):
            calls.add_metric([*base, name], running)
            pending.add_metric([*base, name], waiting)
        yield calls
        yield pending
        lag = GaugeMetricFamily(
            "streamkit_consumer_lag",
            "Records between the committed offset and the end of the partition "
            "(refreshed every commit interval).",
            labels=["app", "worker", "topic", "partition"],
        )
        for (topic, partition), behind in sorted(dict(worker.lag).items()):
            lag.add_metric([*base, topic, str(partition)], behind)
        yield lag
