"""The supervisor of ``streamkit run --workers N``: N worker processes of one group.

It starts the workers (processes, not threads: the GIL), restarts one that crashes with
an exponential backoff, gives up on a crash loop with a clear message, forwards SIGTERM
and SIGINT as a graceful stop, and exits non-zero when workers cannot start. Under
``--autoscale`` a :class:`~streamkit.host.scaler.Scaler` sets the count instead: the
supervisor starts workers and drains the ones it retires (SIGTERM: finish, commit, leave).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from types import FrameType

import orjson

from streamkit.engines.kafka import WorkerOptions
from streamkit.errors import ConfigError
from streamkit.host.scaler import Scaler
from streamkit.host.worker import EXIT_CANNOT_START, EXIT_OK, ProcessOptions
from streamkit.runtime import instance

__all__ = ["Supervisor", "SupervisorOptions"]

log = logging.getLogger("streamkit.supervisor")
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class SupervisorOptions:
    """How many workers, and when a crashing one is given up on.

    Attributes:
        workers: worker processes to keep running.
        max_restarts: crashes of one worker within ``restart_window`` seconds that end
            the run (a crash loop).
        restart_window: seconds over which crashes are counted.
        backoff_initial: seconds before the first restart; doubles per crash within
            ``restart_window``.
        backoff_max: the longest wait before a restart.
        worker: options every worker gets (its ``worker_id`` is set per process).
        process: HTTP, log format and tracing of every worker; worker *i* serves HTTP on
            ``process.http_port + i`` (``+ 1 + i`` under autoscaling, where the
            supervisor serves its own metrics on ``http_port``).
        log_level: the workers' log level.
    """

    workers: int = 1
    max_restarts: int = 5
    restart_window: float = 60.0
    backoff_initial: float = 1.0
    backoff_max: float = 30.0
    worker: WorkerOptions = field(default_factory=WorkerOptions)
    process: ProcessOptions = field(default_factory=ProcessOptions)
    log_level: str = "info"


@dataclass
class _Slot:
    index: int
    process: subprocess.Popen[bytes] | None = None
    crashes: deque[float] = field(default_factory=deque)
    restart_at: float | None = None
    backoff: float = 0.0
    retire_by: float | None = None  # draining after a scale-down; killed after this
    restarts: int = 0  # since the supervisor started


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM if the supervisor dies (Linux)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Supervisor:
    """Keeps ``options.workers`` worker processes of ``target`` running."""

    def __init__(
        self,
        target: str,
        options: SupervisorOptions,
        instance_id: str | None = None,
        scaler: Scaler | None = None,
    ) -> None:
        self.target = target
        self.options = options
        self.instance_id = instance_id
        self.scaler = scaler
        first = options.workers if scaler is None else scaler.options.min_workers
        self.slots = [_Slot(i) for i in range(first)]
        self._stopping = False

    def _spawn(self, slot: _Slot) -> None:
        worker = replace(self.options.worker, worker_id=str(slot.index), restarts=slot.restarts)
        payload = {k: v for k, v in asdict(worker).items() if v is not None}
        process = self.options.process
        if process.http_port:
            offset = slot.index + (1 if self.scaler is not None else 0)
            process = replace(process, http_port=process.http_port + offset)
        command = [
            sys.executable,
            "-m",
            "streamkit.host",
            self.target,
            "--options",
            orjson.dumps(payload).decode(),
            "--log-level",
            self.options.log_level,
            "--process",
            orjson.dumps(asdict(process)).decode(),
        ]
        env = dict(os.environ)
        if self.instance_id:
            env[instance.ENV] = self.instance_id
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.getcwd(), env.get("PYTHONPATH")]))
        slot.process = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - single-threaded
        )
        slot.restart_at = None
        log.info("started worker %d (pid %d)", slot.index, slot.process.pid)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if not self._stopping:
            log.info("received %s: stopping workers", signal.Signals(signum).name)
        self._stopping = True

    def stop_requested(self) -> bool:
        """True once SIGTERM or SIGINT asked for a stop."""
        return self._stopping

    def run(self) -> int:
        """Run until a signal stops everything or a worker cannot be kept up; exit code."""
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            if self.scaler is not None:
                self.scaler.start()
            for slot in self.slots:
                self._spawn(slot)
            code = self._watch()
        finally:
            self._stop_all()
            if self.scaler is not None:
                self.scaler.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return code

    @property
    def serving(self) -> list[_Slot]:
        """The slots that are not being retired (running or waiting to restart)."""
        return [s for s in self.slots if s.retire_by is None]

    def resize(self, workers: int) -> None:
        """Start or retire workers until ``workers`` are serving.

        A new worker takes the lowest index no slot holds (its HTTP port and, under
        exactly-once, its transactional id); a retired one is the highest-numbered, sent
        SIGTERM to drain and leave, and killed if it outlives the shutdown timeout.
        """
        serving = self.serving
        now = time.monotonic()
        for _ in range(workers - len(serving)):
            taken = {s.index for s in self.slots}
            slot = _Slot(next(i for i in range(len(taken) + 1) if i not in taken))
            self.slots.append(slot)
            self._spawn(slot)
        for slot in sorted(serving, key=lambda s: s.index, reverse=True)[
            : max(0, len(serving) - workers)
        ]:
            if slot.process is None:  # waiting for a restart: nothing to drain
                self.slots.remove(slot)
                continue
            slot.retire_by = now + self.options.worker.shutdown_timeout + 10
            slot.process.send_signal(signal.SIGTERM)
            log.info("draining worker %d (pid %d)", slot.index, slot.process.pid)

    def _retired(self, slot: _Slot, now: float) -> bool:
        """A retiring slot's process is gone (and the slot removed), else it is waited on."""
        process, retire_by = slot.process, slot.retire_by
        if process is None or retire_by is None:
            self.slots.remove(slot)
            return True
        code = process.poll()
        if code is None and now >= retire_by:
            log.error("worker %d did not drain in time; killing it", slot.index)
            process.kill()
            code = process.wait()
        if code is None:
            return False
        if code == EXIT_OK:
            log.info("worker %d drained and stopped", slot.index)
        else:
            log.warning("worker %d stopped with exit code %d while draining", slot.index, code)
        self.slots.remove(slot)
        return True

    def _watch(self) -> int:
        while not self._stopping:
            now = time.monotonic()
            if self.scaler is not None:
                try:
                    wanted = self.scaler.poll(now, len(self.serving))
                except ConfigError as exc:
                    log.error("cannot autoscale: %s", exc)
                    return EXIT_CANNOT_START
                if wanted is not None:
                    self.resize(wanted)
            for slot in list(self.slots):
                if slot.retire_by is not None:
                    self._retired(slot, now)
                    continue
                if slot.process is None:
                    if slot.restart_at is not None and now >= slot.restart_at:
                        self._spawn(slot)
                    continue
                code = slot.process.poll()
                if code is None:
                    continue
                slot.process = None
                if self.stop_requested():
                    break
                if code == EXIT_CANNOT_START:
                    log.error(
                        "worker %d could not start (see its error above); stopping", slot.index
                    )
                    return EXIT_CANNOT_START
                verdict = self._crashed(slot, code, now)
                if verdict is not None:
                    return verdict
            time.sleep(0.1)
        return EXIT_OK

    def _crashed(self, slot: _Slot, code: int, now: float) -> int | None:
        slot.crashes.append(now)
        while slot.crashes and now - slot.crashes[0] > self.options.restart_window:
            slot.crashes.popleft()
        if len(slot.crashes) >= self.options.max_restarts:
            log.error(
                "worker %d crashed %d times within %.0fs (last exit code %d); giving up",
                slot.index,
                len(slot.crashes),
                self.options.restart_window,
                code,
            )
            return 1
        # Doubles with each crash inside the window, so a worker that ran well for a
        # window starts again from the initial backoff.
        slot.backoff = min(
            self.options.backoff_max,
            self.options.backoff_initial * 2 ** (len(slot.crashes) - 1),
        )
        slot.restart_at = now + slot.backoff
        slot.restarts += 1
        log.warning(
            "worker %d exited with code %d; restarting in %.1fs", slot.index, code, slot.backoff
        )
        return None

    def _stop_all(self) -> None:
        running = [s.process for s in self.slots if s.process is not None]
        for process in running:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.options.worker.shutdown_timeout + 10
        for process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker pid %d did not stop; killing it", process.pid)
                process.kill()
                process.wait()
        for slot in self.slots:
            slot.process = None
