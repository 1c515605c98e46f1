"""Helpers for running real worker processes against the test broker."""

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from tests.integration.helpers import Processes, committed_offsets

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))


@dataclass
class EchoSetup:
    """Topics and group of one echo-app test, and the processes it started."""

    bootstrap: str
    config: dict[str, Any]
    runs: Processes  # the `streamkit run`s it started
    input: str
    output: str
    group: str
    partitions: int

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "STREAMKIT_BOOTSTRAP_SERVERS": self.bootstrap,
            "ECHO_INPUT": self.input,
            "ECHO_OUTPUT": self.output,
            "ECHO_GROUP": self.group,
            "ECHO_PARTITIONS": str(self.partitions),
            "PYTHONPATH": ROOT,
            **extra,
        }

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "streamkit", *args]

    def cli_status(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command("status", "--app", "tests.integration.apps.echo", "--once"),
            env={**self.env(), "COLUMNS": "200"},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def read_raw(self, topic: str) -> list[Any]:
        consumer = Consumer(
            {**self.config, "group.id": f"raw-{uuid.uuid4().hex}", "auto.offset.reset": "earliest"}
        )
        consumer.subscribe([topic])
        out: list[Any] = []
        deadline = time.monotonic() + 10
        try:
            while time.monotonic() < deadline:
                batch = consumer.consume(100, timeout=0.5)
                out += [m for m in batch if m.error() is None]
                if out and not batch:
                    break
        finally:
            consumer.close()
        return out

    def start(self, *args: str, **env: str) -> subprocess.Popen[bytes]:
        """`streamkit run tests.integration.apps.echo ARGS` in the background."""
        return self.runs.start(
            [sys.executable, "-m", "streamkit", "run", "tests.integration.apps.echo", *args],
            self.env(**env),
        )

    def stderr(self, process: subprocess.Popen[bytes]) -> str:
        """What a run of :meth:`start` wrote to stderr so far."""
        return self.runs.stderr(process)

    def produce(self, count: int, start: int = 0) -> None:
        producer = Producer({**self.config, "linger.ms": 5, "enable.idempotence": True})
        for n in range(start, start + count):
            producer.produce(self.input, orjson.dumps({"n": n}), f"k{n % 97}".encode())
            if n % 1000 == 0:
                producer.poll(0)
        assert producer.flush(30) == 0

    def read(self, topic: str, expected: int, timeout: float = 60.0) -> list[dict[str, Any]]:
        """Read ``topic`` from the start until ``expected`` records or the deadline."""
        return self._read(topic, lambda records: len(records) >= expected, timeout)

    def read_covering(
        self, topic: str, sources: set[tuple[int, int]], timeout: float = 60.0
    ) -> list[dict[str, Any]]:
        """Read the echo outputs of ``topic`` from the start until every input coordinate
        of ``sources`` has one, or the deadline. Not a count: at least once allows
        duplicates, and counting them would stop before the last outputs are read."""
        seen: set[tuple[int, int]] = set()
        counted = [0]  # records already in ``seen``

        def covered(records: list[dict[str, Any]]) -> bool:
            seen.update((r["p"], r["o"]) for r in records[counted[0] :])
            counted[0] = len(records)
            return sources <= seen

        return self._read(topic, covered, timeout)

    def _read(
        self, topic: str, enough: Callable[[list[dict[str, Any]]], bool], timeout: float
    ) -> list[dict[str, Any]]:
        consumer = Consumer(
            {
                **self.config,
                "group.id": f"reader-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            }
        )
        consumer.subscribe([topic])
        records: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        try:
            while not enough(records) and time.monotonic() < deadline:
                for msg in consumer.consume(500, timeout=0.5):
                    if msg.error() is None:
                        doc = orjson.loads(msg.value())
                        doc["_partition"], doc["_offset"] = msg.partition(), msg.offset()
                        records.append(doc)
        finally:
            consumer.close()
        return records

    def input_coordinates(self) -> set[tuple[int, int]]:
        return {(r["_partition"], r["_offset"]) for r in self.read(self.input, self.total_input())}

    def total_input(self) -> int:
        return sum(high for _, high in self.watermarks(self.input).values())

    def watermarks(self, topic: str) -> dict[int, tuple[int, int]]:
        consumer = Consumer({**self.config, "group.id": "watermarks"})
        try:
            return {
                p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                for p in range(self.partitions)
            }
        finally:
            consumer.close()

    def caught_up(self) -> bool:
        """Every partition's committed offset is at its end (empty ones count as done)."""
        committed = self.committed()
        return all(end == 0 or committed.get(p) == end for p, end in self.ends().items())

    def output_count(self) -> int:
        return sum(high - low for low, high in self.watermarks(self.output).values())

    def ends(self) -> dict[int, int]:
        return {p: high for p, (_, high) in self.watermarks(self.input).items()}

    def committed(self) -> dict[int, int]:
        return committed_offsets(self.config, self.group, self.input, self.partitions)

    def stop(self, process: subprocess.Popen[bytes], timeout: float = 60) -> tuple[int, str]:
        """SIGTERM a run of :meth:`start` and wait: its exit code and its stderr."""
        return self.runs.stop(process, timeout)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except KafkaException:  # a transient broker answer (coordinator moving): ask again
            pass
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.fixture
def echo(
    kafka_bootstrap: str,
    kafka_config: dict[str, Any],
    topic_factory: Callable[..., str],
    tmp_path: Path,
) -> Iterator[EchoSetup]:
    partitions = 6
    setup = EchoSetup(
        bootstrap=kafka_bootstrap,
        config=kafka_config,
        runs=Processes(tmp_path),
        input=topic_factory(partitions=partitions, prefix="echo-in"),
        output=topic_factory(partitions=partitions, prefix="echo-out"),
        group=f"echo-{uuid.uuid4().hex[:8]}",
        partitions=partitions,
    )
    yield setup
    setup.runs.stop_all(timeout=45)
