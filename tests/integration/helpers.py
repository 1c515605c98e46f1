"""What the integration fixtures share: creating an app's topics, starting processes with
their stderr in files and stopping them, running a worker in a thread of the test, reading
a topic back, and reading a group's committed offsets."""

import os
import signal
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Message, TopicPartition

from streamkit import App
from streamkit.engines.kafka import KafkaWorker, WorkerOptions, read_until
from streamkit.engines.kafka.clients import BOUNDED_READ
from streamkit.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def create_app_topics(module: str, env: dict[str, str]) -> list[str]:
    """``streamkit topics create MODULE`` (it must succeed); the topics it created."""
    created = subprocess.run(
        [sys.executable, "-m", "streamkit", "topics", "create", module],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert created.returncode == 0, created.stderr
    return [line.split()[1] for line in created.stdout.splitlines() if line.startswith("created")]


@dataclass
class Processes:
    """The processes a test started, each with its stderr in a file of ``logs``.

    Not a pipe: a pipe nobody reads fills up, and the process then blocks on its next log
    line (a stalled worker looks like a lost record).
    """

    logs: Path
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])  # several share ``logs``

    def start(self, command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        """Start ``command`` in the project root."""
        with self._log(len(self.started)).open("wb") as out:
            process = subprocess.Popen(
                command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=out
            )
        self.started.append(process)
        return process

    def stderr(self, process: subprocess.Popen[bytes]) -> str:
        """What a started process wrote to stderr so far."""
        return self._log(self.started.index(process)).read_text(errors="replace")

    def stop(self, process: subprocess.Popen[bytes], timeout: float = 60) -> tuple[int, str]:
        """SIGTERM a started process and wait: its exit code and its stderr."""
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=timeout)
        return process.returncode, self.stderr(process)

    def stop_all(self, timeout: float = 45) -> None:
        """Stop those still running (see :func:`stop_all`), and print each one's stderr:
        pytest shows it when the test failed."""
        stop_all(self.started, timeout)
        for process in self.started:
            print(f"--- stderr of pid {process.pid}:\n{self.stderr(process)[-6000:]}")

    def _log(self, n: int) -> Path:
        return self.logs / f"{self.tag}-{n}.log"


def stop(process: subprocess.Popen[bytes], timeout: float = 60) -> tuple[int, str]:
    """SIGTERM ``process`` and wait for it: its exit code and what it wrote to stderr."""
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=timeout)
    return process.returncode, err.decode(errors="replace")


def stop_all(processes: list[subprocess.Popen[bytes]], timeout: float = 45) -> None:
    """Stop every process still running: SIGTERM, then SIGKILL past ``timeout`` (teardown,
    also after a failed test)."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def committed_offsets(
    config: dict[str, Any], group: str, topic: str, partitions: int
) -> dict[int, int]:
    """``group``'s committed offset of each partition of ``topic`` (negative: none)."""
    consumer = Consumer({**config, "group.id": group})
    try:
        parts = consumer.committed(
            [TopicPartition(topic, p) for p in range(partitions)], timeout=10
        )
    finally:
        consumer.close()
    return {tp.partition: tp.offset for tp in parts}


def start_worker(app: App, bootstrap: str) -> tuple[KafkaWorker, threading.Thread]:
    """A worker of ``app`` running in a daemon thread (commits every 0.2 s); the test stops
    it with ``worker.request_stop()`` and joins the thread."""
    worker = KafkaWorker(
        app,
        settings=Settings(bootstrap_servers=bootstrap),
        options=WorkerOptions(commit_interval=0.2),
    )
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    return worker, thread


def read_all(
    config: dict[str, Any], topic: str, *, stall: float = 60.0, isolation: str = "read_uncommitted"
) -> list[Message]:
    """Every record of ``topic`` up to its end now, over all its partitions (the end is a
    position, not an offset: transaction markers take offsets too)."""
    consumer = Consumer(
        {
            **config,
            "group.id": f"read-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "isolation.level": isolation,
            **BOUNDED_READ,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ranges = {
            (topic, p): consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            for p in partitions
        }
        return list(read_until(consumer, ranges, stall=stall))
    finally:
        consumer.close()


def run_demo(module: str, bootstrap: str, *args: str) -> str:
    """``python -m <module> ARGS`` on the test broker; it must succeed; its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        env={**os.environ, "STREAMKIT_BOOTSTRAP_SERVERS": bootstrap, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout
