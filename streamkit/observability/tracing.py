"""OpenTelemetry tracing: one span per processed record (needs the ``tracing`` extra).

The span follows the messaging semantic conventions: name ``process <topic>``, kind
CONSUMER, attributes ``messaging.system=kafka``, ``messaging.operation.type=process``,
``messaging.destination.name``, ``messaging.destination.partition.id``,
``messaging.consumer.group.name``, ``messaging.kafka.offset`` and
``messaging.kafka.message.key``. Its parent is the W3C ``traceparent`` of the input's
headers (the last one, when there are several), and its own ``traceparent`` is written to
every output, retry and dead-letter record, so one event's path through several apps is
one trace.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from streamkit.failures.failure import Action, Decision, Failure
from streamkit.processor import Middleware, RecordInfo

__all__ = ["TracingMiddleware", "configure_tracing"]

_PROPAGATOR = TraceContextTextMapPropagator()
_CARRIED = frozenset({"traceparent", "tracestate"})


class TracingMiddleware(Middleware):
    """Spans for records, through ``tracer_provider`` (default: the global one)."""

    def __init__(self, tracer_provider: Any = None) -> None:
        self.tracer = trace.get_tracer("streamkit", tracer_provider=tracer_provider)

    def on_record(self, record: RecordInfo) -> AbstractContextManager[list[tuple[str, bytes]]]:
        return self._span(record)

    @contextmanager
    def _span(self, record: RecordInfo) -> Iterator[list[tuple[str, bytes]]]:
        carrier: dict[str, str] = {}
        for name, value in record.headers:
            if name in _CARRIED and value:
                carrier[name] = value.decode("ascii", "replace")
        parent = _PROPAGATOR.extract(carrier) if carrier else None
        attributes: dict[str, Any] = {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.destination.name": record.topic,
            "messaging.destination.partition.id": str(record.partition),
            "messaging.consumer.group.name": record.group,
            "messaging.kafka.offset": record.offset,
        }
        if record.key is not None:
            attributes["messaging.kafka.message.key"] = record.key.decode("utf-8", "replace")
        with self.tracer.start_as_current_span(
            f"process {record.topic}", context=parent, kind=SpanKind.CONSUMER, attributes=attributes
        ):
            out: dict[str, str] = {}
            _PROPAGATOR.inject(out)
            yield [(name, value.encode("ascii")) for name, value in out.items()]

    def on_failure(self, failure: Failure, decision: Decision) -> None:
        span = trace.get_current_span()
        span.record_exception(failure.error)
        if decision.action is not Action.RETRY:
            span.set_status(Status(StatusCode.ERROR, f"{failure.stage.value}: {failure.error}"))


def configure_tracing() -> None:
    """Install an SDK tracer provider unless the application already did.

    ``OTEL_TRACES_EXPORTER=otlp`` (with ``opentelemetry-exporter-otlp`` installed) or
    ``console``; the service name is ``OTEL_SERVICE_NAME`` (default: streamkit).
    """
    from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import (  # noqa: PLC0415
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SpanExporter,
    )

    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return
    name = os.environ.get("OTEL_SERVICE_NAME", "streamkit")
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    exporter: SpanExporter
    if os.environ.get("OTEL_TRACES_EXPORTER", "otlp") == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
                OTLPSpanExporter,
            )
        except ImportError:
            exporter = ConsoleSpanExporter()
        else:
            exporter = OTLPSpanExporter()
    else:
        exporter = ConsoleSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
