"""Idempotent consumers on a real broker: a repeated event id runs the side effect once."""

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition

from streamkit.ops.admin import admin_client, delete_topics
from tests.integration.runtime.conftest import wait_for

ROOT = Path(__file__).resolve().parents[3]
APP = "tests.integration.apps.payments"


def test_the_same_event_id_twice_runs_the_side_effect_once_even_across_restarts(
    kafka_bootstrap: str, kafka_config: dict[str, Any], tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:8]
    group, source, sink = f"pay-{suffix}", f"payments-{suffix}", f"receipts-{suffix}"
    log = tmp_path / "charges.log"
    env = {
        **os.environ,
        "STREAMKIT_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "PAYMENTS_INPUT": source,
        "PAYMENTS_OUTPUT": sink,
        "PAYMENTS_GROUP": group,
        "PAYMENTS_LOG": str(log),
        "PYTHONPATH": str(ROOT),
    }
    cli = [sys.executable, "-m", "streamkit"]
    created = subprocess.run(
        [*cli, "topics", "create", APP],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert created.returncode == 0, created.stderr
    producer = Producer(kafka_config)

    def send(*ids: str) -> None:
        for payment in ids:
            producer.produce(source, orjson.dumps({"id": payment}), payment.encode())
        assert producer.flush(10) == 0

    def done() -> bool:
        consumer = Consumer({**kafka_config, "group.id": group})
        try:
            parts = [TopicPartition(source, p) for p in range(3)]
            committed = {t.partition: t.offset for t in consumer.committed(parts, timeout=10)}
            ends = {
                p: consumer.get_watermark_offsets(TopicPartition(source, p), timeout=10)[1]
                for p in range(3)
            }
        finally:
            consumer.close()
        return all(end == 0 or committed[p] == end for p, end in ends.items())

    def run() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [*cli, "run", APP, "--commit-interval", "0.2"],
            env=env,
            cwd=ROOT,
            stderr=subprocess.PIPE,
        )

    try:
        worker = run()
        send("p1", "p2", "p2", "p3", "p1")
        wait_for(done, 60, "the first payments")
        assert sorted(log.read_text().split()) == ["p1", "p2", "p3"]
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0
        worker = run()  # a fresh process: the ids come back from the changelog
        send("p2", "p4")
        wait_for(done, 60, "the payments after the restart")
        assert sorted(log.read_text().split()) == ["p1", "p2", "p3", "p4"]
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err.decode()[-2000:]
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        delete_topics(
            admin_client(kafka_config),
            [source, sink, f"{group}-charge-dedupe-changelog"],
        )
