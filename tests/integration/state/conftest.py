"""Running the totals app (tests/integration/apps/totals.py) against the test broker."""

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from streamkit.ops.admin import admin_client, delete_topics
from tests.integration.apps.totals import fold
from tests.integration.helpers import Processes, read_all

ROOT = Path(__file__).resolve().parents[3]
APP = "tests.integration.apps.totals"


@dataclass
class Totals:
    bootstrap: str
    config: dict[str, Any]
    group: str
    input: str
    output: str
    state_dir: Path
    runs: Processes  # the `streamkit run`s it started
    partitions: int = 4
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def changelog(self) -> str:
        return f"{self.group}-totals-changelog"

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "STREAMKIT_BOOTSTRAP_SERVERS": self.bootstrap,
            "STREAMKIT_STATE_DIR": str(self.state_dir),
            "STREAMKIT_KAFKA_CONSUMER_SESSION_TIMEOUT_MS": "6000",
            "TOTALS_INPUT": self.input,
            "TOTALS_OUTPUT": self.output,
            "TOTALS_GROUP": self.group,
            "TOTALS_PARTITIONS": str(self.partitions),
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

    def start(self, *args: str, **env: str) -> subprocess.Popen[bytes]:
        return self.runs.start(
            [
                sys.executable,
                "-m",
                "streamkit",
                "run",
                APP,
                "--batch-size",
                "100",
                "--commit-interval",
                "0.3",
                *args,
            ],
            self.env(**env),
        )

    def stop(self, process: subprocess.Popen[bytes]) -> tuple[int, str]:
        return self.runs.stop(process, 90)

    def members(self) -> int:
        """Members of the app's consumer group now (-1: the coordinator cannot say)."""
        admin = admin_client(self.config)
        try:
            return len(
                admin.describe_consumer_groups([self.group])[self.group].result(timeout=10).members
            )
        except KafkaException:
            return -1

    def produce(self, count: int, customers: int = 40, close_every: int = 0) -> None:
        producer = Producer({**self.config, "enable.idempotence": True, "linger.ms": 5})
        start = len(self.events)
        for n in range(start, start + count):
            customer = f"c{n % customers}"
            event: dict[str, Any] = {"n": n, "customer": customer, "amount": n % 17 + 1}
            if close_every and n % close_every == close_every - 1:
                event = {"n": n, "customer": customer, "close": True}
            self.events.append(event)
            producer.produce(self.input, orjson.dumps(event), customer.encode())
        assert producer.flush(30) == 0

    def expected(self) -> dict[str, Any]:
        """The pure fold of every produced event, per customer (in per-key order)."""
        state: dict[str, Any] = {}
        for event in self.events:
            new = fold(state.get(event["customer"]), event)
            if new is None:
                state.pop(event["customer"], None)
            else:
                state[event["customer"]] = new
        return state

    def changelog_state(self) -> dict[str, Any]:
        """The latest changelog value per key (tombstones delete)."""
        state: dict[str, Any] = {}
        for key, value in self._read(self.changelog, "read_uncommitted"):
            if value is None:
                state.pop(key.decode(), None)
            else:
                state[key.decode()] = orjson.loads(value)["s"]
        return state

    def _read(self, topic: str, isolation: str) -> list[tuple[bytes, bytes | None]]:
        """Every record of ``topic`` up to its end now (key, value)."""
        return [(m.key(), m.value()) for m in read_all(self.config, topic, isolation=isolation)]

    def read_committed(self, topic: str) -> list[Any]:
        """Every committed value of ``topic`` (JSON-decoded; tombstones as None)."""
        return [
            None if value is None else orjson.loads(value)
            for _, value in self._read(topic, "read_committed")
        ]

    def count_records(self, topic: str) -> int:
        """Records still in ``topic`` (after compaction), read to the end."""
        return len(self._read(topic, "read_uncommitted"))

    def caught_up(self) -> bool:
        consumer = Consumer({**self.config, "group.id": self.group})
        try:
            parts = [TopicPartition(self.input, p) for p in range(self.partitions)]
            committed = {tp.partition: tp.offset for tp in consumer.committed(parts, timeout=10)}
            ends = {
                p: consumer.get_watermark_offsets(TopicPartition(self.input, p), timeout=10)[1]
                for p in range(self.partitions)
            }
        finally:
            consumer.close()
        return all(end == 0 or committed.get(p) == end for p, end in ends.items())


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest.fixture
def totals(kafka_bootstrap: str, kafka_config: dict[str, Any], tmp_path: Path) -> Iterator[Totals]:
    suffix = uuid.uuid4().hex[:8]
    setup = Totals(
        bootstrap=kafka_bootstrap,
        config=kafka_config,
        group=f"totals-{suffix}",
        input=f"orders-{suffix}",
        output=f"totals-{suffix}",
        state_dir=tmp_path / "state",
        runs=Processes(tmp_path),
    )
    created = setup.cli("topics", "create", APP)
    assert created.returncode == 0, created.stderr
    yield setup
    setup.runs.stop_all(timeout=60)
    delete_topics(admin_client(kafka_config), [setup.input, setup.output, setup.changelog])
