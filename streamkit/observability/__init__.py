"""Observability: ``metrics`` (Prometheus), ``http`` (/metrics, /healthz, /readyz),
``tracing`` (OpenTelemetry, optional extra) and ``logs`` (text or JSON, secrets redacted).
Import the module you need."""

from streamkit.observability.logs import configure_logging, record_fields, scrub

__all__ = ["configure_logging", "record_fields", "scrub"]
