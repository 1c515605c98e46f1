"""The supervisor's autoscaling loop: measure the lag, ask the policy, log and export it.

A background thread measures the group's lag through the admin API every
``interval`` seconds (no group membership, so it also runs with no worker at all); the
supervisor's loop calls :meth:`Scaler.poll` and applies the count it answers. Each
change is logged with its reason, and ``/metrics`` on the supervisor's port exports:

* ``streamkit_autoscale_workers``: workers serving now;
* ``streamkit_autoscale_desired_workers``: what the last measurement asked for;
* ``streamkit_autoscale_lag``: the lag counted (stuck partitions left out);
* ``streamkit_autoscale_stuck_partitions``: partitions left out as stuck;
* ``streamkit_autoscale_decisions_total{direction="up"|"down"}``: changes made.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from streamkit.errors import ConfigError, StreamkitError
from streamkit.host.autoscale import AutoscaleOptions, Autoscaler, Decision, Lag
from streamkit.records import TP

__all__ = ["Scaler"]

log = logging.getLogger("streamkit.autoscale")


class Scaler:
    """Drives :class:`Autoscaler` with measurements from ``measure`` (a lag probe)."""

    def __init__(
        self,
        options: AutoscaleOptions,
        measure: Callable[[], Mapping[TP, Lag]],
        app: str,
        http_port: int = 0,
        http_host: str = "127.0.0.1",
    ) -> None:
        self.options = options
        self.policy = Autoscaler(options)
        self._measure = measure
        self._http = (http_host, http_port)
        self._server: Any = None
        self._latest: tuple[float, Mapping[TP, Lag]] | None = None
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._measuring, name="lag-probe", daemon=True)
        self._stuck: tuple[TP, ...] = ()
        self._warned = ""
        self.fatal: str | None = None
        """Why measuring is impossible (a missing topic): the supervisor stops on it."""
        self.registry = CollectorRegistry()
        labels = ["app"]
        self._workers = Gauge(
            "streamkit_autoscale_workers", "Workers serving", labels, registry=self.registry
        ).labels(app)
        self._desired = Gauge(
            "streamkit_autoscale_desired_workers",
            "Workers the last lag measurement asked for",
            labels,
            registry=self.registry,
        ).labels(app)
        self._lag = Gauge(
            "streamkit_autoscale_lag",
            "Records behind, stuck partitions left out",
            labels,
            registry=self.registry,
        ).labels(app)
        self._stuck_gauge = Gauge(
            "streamkit_autoscale_stuck_partitions",
            "Lagging partitions left out because their offset does not move",
            labels,
            registry=self.registry,
        ).labels(app)
        self._decisions = Counter(
            "streamkit_autoscale_decisions",
            "Changes of the worker count",
            ["app", "direction"],
            registry=self.registry,
        )
        self._app = app

    def start(self) -> None:
        """Start measuring, and serve ``/metrics`` when a port was given."""
        host, port = self._http
        if port:
            self._server, _ = start_http_server(port, host, self.registry)
        self._thread.start()

    def close(self) -> None:
        """Stop measuring and serving."""
        self._done.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self._thread.join(timeout=self.options.interval + 15)

    def _measuring(self) -> None:
        while not self._done.is_set():
            try:
                lags = self._measure()
            except ConfigError as exc:
                self.fatal = str(exc)
                return
            except StreamkitError as exc:
                if str(exc) != self._warned:  # once per distinct cause, not every interval
                    log.warning("cannot measure lag: %s", exc)
                    self._warned = str(exc)
            else:
                self._warned = ""
                with self._lock:
                    self._latest = (time.monotonic(), lags)
            self._done.wait(self.options.interval)

    def poll(self, now: float, serving: int) -> int | None:
        """The workers there should be, if a new measurement says so; else None.

        Raises:
            ConfigError: the lag cannot be measured at all (a topic is missing).
        """
        if self.fatal is not None:
            raise ConfigError(self.fatal)
        self._workers.set(serving)
        with self._lock:
            latest, self._latest = self._latest, None
        if latest is None:
            return None
        decision = self.policy.decide(latest[0], serving, latest[1])
        self._export(decision)
        if decision.workers == serving:
            log.debug("%d worker(s): %s", serving, decision.reason)
            return None
        direction = "up" if decision.workers > serving else "down"
        log.info("%d -> %d worker(s): %s", serving, decision.workers, decision.reason)
        self._decisions.labels(self._app, direction).inc()
        self.policy.changed(now)
        self._workers.set(decision.workers)
        return decision.workers

    def _export(self, decision: Decision) -> None:
        self._desired.set(decision.workers)
        self._lag.set(decision.lag)
        self._stuck_gauge.set(len(decision.stuck))
        if decision.stuck != self._stuck:
            new = [f"{t}[{p}]" for t, p in decision.stuck if (t, p) not in self._stuck]
            if new:
                log.warning(
                    "left out of the lag: %s (committed offset unchanged for %.0fs while "
                    "records wait; a held record, not load)",
                    ", ".join(new),
                    self.options.stuck_after,
                )
            self._stuck = decision.stuck
