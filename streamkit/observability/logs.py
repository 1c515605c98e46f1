"""Worker logs: human-readable lines by default, JSON lines with ``--log-format json``.

Every record-related line carries ``topic``, ``partition``, ``offset`` and ``processor``
(as fields in JSON, in the text otherwise). A redaction filter replaces every secret value
known to the settings (passwords, keys, tokens, registry credentials) with ``***`` in
every line, whatever logged it.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson

from streamkit.records import record_fields
from streamkit.settings import remember_secrets, scrub, secrets_known

__all__ = [
    "JsonFormatter",
    "RedactingFilter",
    "configure_logging",
    "record_fields",
    "remember_secrets",
    "scrub",
]

_RECORD_FIELDS = ("topic", "partition", "offset", "processor")


class RedactingFilter(logging.Filter):
    """Replaces remembered secrets in the formatted message and its arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if secrets_known():
            record.msg = scrub(record.getMessage())
            record.args = None
            if record.exc_info and record.exc_info[1] is not None:
                record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
                record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, record fields."""

    def __init__(self, worker: str | None) -> None:
        super().__init__()
        self.worker = worker

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.worker is not None:
            doc["worker"] = self.worker
        for name in _RECORD_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                doc[name] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exception"] = record.exc_text
        return orjson.dumps(doc).decode()


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        topic = getattr(record, "topic", None)
        if topic is not None and f"{topic}[" not in line:
            where = f"{topic}[{getattr(record, 'partition', '?')}]@{getattr(record, 'offset', '?')}"
            processor = getattr(record, "processor", "")
            line += f" ({where}{' ' + processor if processor else ''})"
        return line


def configure_logging(level: str, worker_id: str | None = None, fmt: str = "text") -> None:
    """Log to stderr as text or JSON lines, with secrets redacted."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(worker_id))
    else:
        who = f"worker {worker_id}" if worker_id is not None else "supervisor"
        handler.setFormatter(
            _TextFormatter(f"%(asctime)s %(levelname)-7s [{who}] %(name)s: %(message)s")
        )
    handler.addFilter(RedactingFilter())
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO), handlers=[handler], force=True
    )
