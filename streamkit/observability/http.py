"""The worker's HTTP endpoints: ``/metrics``, ``/healthz``, ``/readyz``.

* ``/healthz`` is 200 while the poll loop has run within ``max.poll.interval.ms``
  (a stuck worker is unhealthy), else 503.
* ``/readyz`` is 200 once the worker joined its group and received an assignment, else 503.
* ``/metrics`` is the worker's Prometheus registry.
* ``/state/{store}/{key}`` answers a key's state when this worker holds its partition,
  else 404 with the partitions it holds and the key's likely partition; for a window
  store, the key's windows (``?from=MS&to=MS`` narrows them).
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

import orjson
from prometheus_client import CONTENT_TYPE_LATEST

from streamkit.errors import ConfigError
from streamkit.observability.metrics import PrometheusMetrics, WorkerCollector
from streamkit.records import key_partition

if TYPE_CHECKING:
    from streamkit.engines.kafka import KafkaWorker
    from streamkit.engines.kafka.queue import QueueWorker

__all__ = ["WorkerHttpServer"]


class WorkerHttpServer:
    """Serves one worker's endpoints from a daemon thread on ``host`` (127.0.0.1 unless
    told otherwise: ``/state`` answers anyone who can connect)."""

    def __init__(
        self,
        worker: KafkaWorker | QueueWorker,
        metrics: PrometheusMetrics,
        port: int,
        host: str = "127.0.0.1",
        max_poll_interval: float = 300.0,
    ) -> None:
        self.worker = worker
        self.metrics = metrics
        self.max_poll_interval = max_poll_interval
        metrics.registry.register(WorkerCollector(worker))
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, server.metrics.exposition(), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    ok, why = server.healthy()
                    self._send(200 if ok else 503, why.encode(), "text/plain")
                elif path == "/readyz":
                    ok, why = server.ready()
                    self._send(200 if ok else 503, why.encode(), "text/plain")
                elif path.startswith("/state/"):
                    status, body = server.state(self.path)
                    self._send(status, orjson.dumps(body), "application/json")
                else:
                    self._send(404, b"not found\n", "text/plain")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return  # scrapes every few seconds would flood the log

        try:
            self.httpd = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise ConfigError(f"cannot serve HTTP on {host}:{port}: {exc.strerror}") from exc
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def healthy(self) -> tuple[bool, str]:
        """Whether the poll loop ran recently enough."""
        age = time.monotonic() - self.worker.last_poll
        if age <= self.max_poll_interval:
            return True, f"ok: polled {age:.1f}s ago\n"
        return (
            False,
            f"stuck: last poll {age:.0f}s ago (max.poll.interval {self.max_poll_interval:.0f}s)\n",
        )

    def ready(self) -> tuple[bool, str]:
        """Whether the worker is a member of its group with an assignment."""
        if self.worker.ever_assigned:
            return True, f"ready: {len(self.worker.assigned)} partitions assigned\n"
        return False, "not ready: waiting for a partition assignment\n"

    def state(self, path: str) -> tuple[int, dict[str, Any]]:
        """``/state/{store}/{key}``: the key's state if this worker holds it, else where."""
        path, _, query = path.partition("?")
        asked = parse_qs(query)
        since = int(asked.get("from", ["0"])[0] or 0)
        until = int(asked["to"][0]) if asked.get("to") else None
        parts = [unquote(p) for p in path.split("/")[2:]]
        specs = {s.name: s for s in self.worker.topology.stores()}
        if len(parts) != 2 or parts[0] not in specs:
            return 404, {"error": f"no such store; stores here: {sorted(specs)}"}
        store, key = parts
        found = self.worker.state_get(store, key, since, until)
        if found is not None:
            partition, state = found
            return 200, {"store": store, "key": key, "partition": partition, "state": state}
        spec = specs[store]
        partitions = sorted({p for t, p in self.worker.assigned if t == spec.source})
        declared = self.worker.app.topics.get(spec.source)
        likely = key_partition(key.encode(), declared.partitions) if declared else None
        here = likely in partitions
        return 404, {
            "error": "no state for this key" if here else "not held by this worker",
            "store": store,
            "key": key,
            "partitions_here": partitions,
            "key_partition": likely,
            "hint": "key_partition assumes librdkafka's default partitioner; "
            "`streamkit status` shows which member owns it",
        }

    def start(self) -> None:
        """Serve in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving."""
        self.httpd.shutdown()
        self.httpd.server_close()
