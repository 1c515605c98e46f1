"""Running the poison app (tests/integration/apps/poison.py) against the test broker."""

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from streamkit.contracts import AvroSerde, SchemaRepository
from streamkit.failures.dead_letter import DeadLetter, read_dead_letter
from streamkit.ops.admin import admin_client, delete_topics
from streamkit.records import message_headers
from tests.integration.helpers import Processes, committed_offsets, read_all

ROOT = Path(__file__).resolve().parents[3]
SCHEMAS = ROOT / "tests" / "integration" / "apps" / "schemas"
APP = "tests.integration.apps.poison"


@dataclass
class Poison:
    bootstrap: str
    config: dict[str, Any]
    group: str
    input: str
    output: str
    runs: Processes  # the `streamkit run`s it started
    partitions: int = 3

    def __post_init__(self) -> None:
        repo = SchemaRepository.from_directory(SCHEMAS)
        self.reading = AvroSerde(repo, "Reading")
        self.result = AvroSerde(repo, "Result")

    @property
    def dlq(self) -> str:
        return f"{self.group}-{self.input}-dlq"

    @property
    def parked(self) -> str:
        return f"{self.group}-{self.input}-parked"

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "STREAMKIT_BOOTSTRAP_SERVERS": self.bootstrap,
            "POISON_INPUT": self.input,
            "POISON_OUTPUT": self.output,
            "POISON_GROUP": self.group,
            "POISON_PARTITIONS": str(self.partitions),
            "PYTHONPATH": str(ROOT),
            **extra,
        }

    def cli(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "streamkit", *args],
            env=self.env(**env),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def start(self, **env: str) -> subprocess.Popen[bytes]:
        return self.runs.start(
            [sys.executable, "-m", "streamkit", "run", APP, "--batch-size", "200"],
            self.env(**env),
        )

    def stop(self, process: subprocess.Popen[bytes]) -> tuple[int, str]:
        return self.runs.stop(process, 60)

    def produce(self, records: list[tuple[bytes | None, bytes, int | None]]) -> None:
        """(key, value, partition or None) each, in order."""
        producer = Producer({**self.config, "enable.idempotence": True, "linger.ms": 5})
        for key, value, partition in records:
            kwargs = {} if partition is None else {"partition": partition}
            producer.produce(self.input, value, key, **kwargs)
        assert producer.flush(30) == 0

    def reading_bytes(self, ident: int, kind: str = "good") -> bytes:
        return self.reading.encode({"id": ident, "value": float(ident), "kind": kind})

    def read(self, topic: str, timeout: float = 5.0) -> list[Any]:
        """Every record of ``topic`` now (up to the high watermarks seen at the start)."""
        return read_all(self.config, topic, stall=timeout + 10)

    def results(self) -> dict[int, dict[str, Any]]:
        out: dict[int, dict[str, Any]] = {}
        for msg in self.read(self.output):
            doc = self.result.decode(msg.value())
            out.setdefault(doc["id"], doc)
        return out

    def result_count(self) -> int:
        return len(self.read(self.output))

    def letters(self, topic: str | None = None) -> list[DeadLetter]:
        topic = topic or self.dlq
        return [
            read_dead_letter(
                m.topic(), m.partition(), m.offset(), m.key(), m.value(), message_headers(m)
            )
            for m in self.read(topic)
        ]

    def committed(self) -> dict[int, int]:
        return committed_offsets(self.config, self.group, self.input, self.partitions)

    def ends(self) -> dict[int, int]:
        consumer = Consumer({**self.config, "group.id": "ends"})
        try:
            return {
                p: consumer.get_watermark_offsets(TopicPartition(self.input, p), timeout=10)[1]
                for p in range(self.partitions)
            }
        finally:
            consumer.close()


@pytest.fixture
def poison(kafka_bootstrap: str, kafka_config: dict[str, Any], tmp_path: Path) -> Iterator[Poison]:
    suffix = uuid.uuid4().hex[:8]
    setup = Poison(
        bootstrap=kafka_bootstrap,
        config=kafka_config,
        group=f"poison-{suffix}",
        input=f"readings-{suffix}",
        output=f"results-{suffix}",
        runs=Processes(tmp_path),
    )
    created = setup.cli("topics", "create", APP)
    assert created.returncode == 0, created.stderr
    yield setup
    setup.runs.stop_all(timeout=45)
    delete_topics(
        admin_client(kafka_config),
        [setup.input, setup.output, setup.dlq, setup.parked],
    )
