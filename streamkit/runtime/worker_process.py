"""One worker process: load the app, run a :class:`KafkaWorker`, exit with a status.

Started by the supervisor as ``python -m streamkit.runtime.worker_process``. Exit codes:
0 stopped cleanly, 1 stopped by a record failure, 2 could not start (configuration,
missing topics, unreachable broker), 3 did not stop within the shutdown timeout.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from types import FrameType

import orjson

from streamkit.app import load_app
from streamkit.engines.kafka import KafkaWorker, WorkerOptions
from streamkit.errors import ProcessingFailedError, StreamkitError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CANNOT_START = 2
EXIT_FORCED = 3


def configure_logging(level: str, worker_id: str | None = None) -> None:
    """Human-readable log lines on stderr, naming the worker."""
    who = f"worker {worker_id}" if worker_id is not None else "supervisor"
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format=f"%(asctime)s %(levelname)-7s [{who}] %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )


def _install_signals(worker: KafkaWorker, shutdown_timeout: float) -> None:
    signalled = threading.Event()

    def force_exit() -> None:
        logging.getLogger("streamkit").error(
            "did not stop within %.0fs; exiting without further commits", shutdown_timeout
        )
        os._exit(EXIT_FORCED)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if signalled.is_set():
            return  # one graceful stop; the watchdog bounds it
        signalled.set()
        worker.request_stop()
        timer = threading.Timer(shutdown_timeout + 5, force_exit)
        timer.daemon = True
        timer.start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def run_worker(target: str, options: WorkerOptions) -> int:
    """Run one worker in this process until it is stopped; return the exit code."""
    log = logging.getLogger("streamkit")
    try:
        app = load_app(target)
        worker = KafkaWorker(app, options=options)
        _install_signals(worker, options.shutdown_timeout)
        worker.check_topics()
    except StreamkitError as exc:
        log.error("cannot start: %s", exc)
        return EXIT_CANNOT_START
    try:
        worker.run()
    except ProcessingFailedError as exc:
        log.error("stopped by a failure: %s", exc)
        return EXIT_FAILED
    except StreamkitError as exc:
        log.error("stopped: %s", exc)
        return EXIT_FAILED
    return EXIT_OK


def main(argv: list[str] | None = None) -> None:
    """Entry point of a worker process (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="streamkit-worker")
    parser.add_argument("target")
    parser.add_argument("--options", default="{}", help="WorkerOptions as JSON")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    options = WorkerOptions(**orjson.loads(args.options))
    configure_logging(args.log_level, options.worker_id)
    sys.exit(run_worker(args.target, options))


if __name__ == "__main__":
    main()
