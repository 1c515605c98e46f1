"""Queue processors on a Kafka share group: more workers than partitions, a poison record
dead-lettered after its deliveries, and nothing lost when a worker dies holding records."""

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import AlterConfigOpType, ConfigEntry, ConfigResource
from confluent_kafka.admin._resource import ResourceType

from streamkit.ops._local_process import free_ports
from tests.integration.helpers import ROOT, Processes, create_app_topics, read_all
from tests.integration.runtime.conftest import wait_for

APP = "tests.integration.apps.queue"


def _produced(port: int, topic: str) -> float:
    """A worker's ``streamkit_records_produced_total`` for ``topic``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    pattern = rf'^streamkit_records_produced_total{{[^}}]*topic="{topic}"[^}}]*}} (\S+)$'
    return sum(float(v) for v in re.findall(pattern, text, re.MULTILINE))


class Queue:
    def __init__(self, bootstrap: str, config: dict[str, Any], partitions: int, logs: Path) -> None:
        tag = uuid.uuid4().hex[:8]
        self.config = config
        self.input, self.output, self.group = f"jobs-{tag}", f"done-{tag}", f"jobs-{tag}"
        self.env = {
            **os.environ,
            "STREAMKIT_BOOTSTRAP_SERVERS": bootstrap,
            "PYTHONPATH": str(ROOT),
            "QUEUE_INPUT": self.input,
            "QUEUE_OUTPUT": self.output,
            "QUEUE_GROUP": self.group,
            "QUEUE_PARTITIONS": str(partitions),
        }
        self.runs = Processes(logs)

    def run(self, *args: str, **env: str) -> subprocess.Popen[bytes]:
        return self.runs.start(
            [sys.executable, "-m", "streamkit", "run", APP, *args], {**self.env, **env}
        )

    def stderr(self, process: subprocess.Popen[bytes]) -> str:
        return self.runs.stderr(process)

    def produce(self, count: int) -> None:
        # Small batches, as jobs arriving over time come: a share consumer acquires whole
        # record batches, so one batch of the whole burst would go to a single worker.
        producer = Producer({**self.config, "enable.idempotence": True, "batch.num.messages": 10})
        for n in range(count):
            producer.produce(self.input, orjson.dumps({"n": n}), f"k{n}".encode())
        assert producer.flush(30) == 0

    def outputs(self) -> list[dict[str, Any]]:
        return [orjson.loads(m.value()) for m in read_all(self.config, self.output)]

    def dead_letters(self) -> list[Any]:
        return read_all(self.config, f"{self.group}-{self.input}-dlq")

    def set_group(self, name: str, value: str) -> None:
        admin = AdminClient(self.config)
        resource = ConfigResource(
            ResourceType.GROUP,
            self.group,
            incremental_configs=[
                ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
            ],
        )
        admin.incremental_alter_configs([resource])[resource].result(timeout=15)


@pytest.fixture
def queue(
    kafka_bootstrap: str, kafka_config: dict[str, Any], tmp_path: Path
) -> Iterator[Callable[[int], Queue]]:
    made: list[Queue] = []

    def make(partitions: int) -> Queue:
        setup = Queue(kafka_bootstrap, kafka_config, partitions, tmp_path)
        create_app_topics(APP, setup.env)
        made.append(setup)
        return setup

    yield make
    for setup in made:
        setup.runs.stop_all()


def test_more_workers_than_partitions_all_work_and_a_poison_job_is_dead_lettered(
    queue: Callable[[int], Queue],
) -> None:
    jobs = queue(2)
    jobs.produce(1500)
    port = free_ports(4)  # the first of 4 ports: a worker each
    run = jobs.run(
        "--workers",
        "4",
        "--batch-size",
        "20",
        "--http-port",
        str(port),
        QUEUE_DELAY_MS="12",
        QUEUE_POISON="7",
    )
    wait_for(lambda: len(jobs.outputs()) >= 1499, 120, "every job but the poison one")
    wait_for(lambda: len(jobs.dead_letters()) >= 1, 60, "the poison job's dead letter")
    produced = sum(_produced(port + i, jobs.output) for i in range(4))
    assert produced >= 1499  # each worker's /metrics counts what the broker acknowledged
    run.send_signal(signal.SIGTERM)
    run.wait(timeout=90)
    err = jobs.stderr(run)
    assert run.returncode == 0, err[-3000:]

    done = Counter(o["n"] for o in jobs.outputs())
    assert set(done) == set(range(1500)) - {7}
    workers = {o["pid"] for o in jobs.outputs()}
    assert len(workers) >= 3, err[-4000:]
    (dead,) = jobs.dead_letters()
    assert orjson.loads(dead.value()) == {"n": 7}
    headers = dict(dead.headers())
    assert headers["__streamkit.error.attempts"] == b"3"  # retries=2: the third delivery
    assert headers["__streamkit.error.exception.message"] == b"poison job 7"
    assert headers["__streamkit.error.processor"] == b"work"
    assert f"as share group {jobs.group}" in err
    status = subprocess.run(
        [sys.executable, "-m", "streamkit", "status", "--app", APP, "--once"],
        env={**jobs.env, "COLUMNS": "250"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert status.returncode == 0, status.stderr
    assert f"share group {jobs.group}: records are acknowledged one by one" in status.stdout


def test_a_worker_killed_holding_records_loses_none_of_them(
    queue: Callable[[int], Queue],
) -> None:
    jobs = queue(1)
    jobs.produce(600)
    jobs.set_group("share.record.lock.duration.ms", "15000")  # the broker's minimum
    first = jobs.run("--workers", "1", "--batch-size", "100", QUEUE_DELAY_MS="20")
    other = jobs.run("--workers", "1", "--batch-size", "100", QUEUE_DELAY_MS="20")
    wait_for(lambda: len(jobs.outputs()) >= 50, 60, "work to start")
    children = subprocess.run(
        ["pgrep", "-P", str(first.pid)], capture_output=True, text=True, check=False
    ).stdout.split()
    assert children, "the first supervisor has no worker"
    os.kill(int(children[0]), signal.SIGKILL)  # it holds a batch of acquired records
    killed_at = time.monotonic()
    wait_for(lambda: {o["n"] for o in jobs.outputs()} >= set(range(600)), 120, "every job")
    recovered = time.monotonic() - killed_at
    for process in (first, other):
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=90)
    done = Counter(o["n"] for o in jobs.outputs())
    assert set(done) == set(range(600))
    duplicates = sum(done.values()) - 600
    assert duplicates <= 500, f"{duplicates} duplicates"  # at most the killed batch
    print(f"all 600 jobs done {recovered:.1f}s after the kill; {duplicates} duplicates")
