"""Docker for users: the example pipeline on the Kafka container, and `docker compose up`.

Marked ``docker``: `make test-all` runs them in CI through deploy/docker/test-tier.sh, which
builds local images and points KAFKA_IMAGE / PYTHON_BASE_IMAGE / STREAMKIT_IMAGE (and
POSTGRES_IMAGE / CONNECT_IMAGE for the cdc profile) at them.
"""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from processors.generator import orders
from processors.orders import PLACED, app
from streamkit.ops.local_broker import free_port
from streamkit.runtime.pipeline import Pipeline
from streamkit.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.docker
_NOT_READY = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
}


def _count(bootstrap: str, topic: str) -> int:
    """Records in ``topic``; 0 while the topic or its leaders are still being created."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"count-{uuid.uuid4().hex}"})
    try:
        info = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if info is None or info.error is not None:
            return 0
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in info.partitions
        )
    except KafkaException as exc:
        if exc.args[0].code() in _NOT_READY:
            return 0  # the topic was just created; its leader is not known yet
        raise
    finally:
        consumer.close()


def _wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(1)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


def test_the_example_pipeline_runs_against_the_kafka_container(kafka_bootstrap: str) -> None:
    assert os.environ.get("STREAMKIT_TEST_BROKER") == "docker", "run through the docker tier"
    env = {**os.environ, "STREAMKIT_BOOTSTRAP_SERVERS": kafka_bootstrap, "PYTHONPATH": str(ROOT)}
    created = subprocess.run(
        [sys.executable, "-m", "streamkit", "topics", "create", "processors.orders"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert created.returncode == 0, created.stderr
    workers = subprocess.Popen(
        [sys.executable, "-m", "streamkit", "run", "processors.orders", "--workers", "2"],
        env=env,
        cwd=ROOT,
        stderr=subprocess.PIPE,
    )
    try:
        serdes = Pipeline(app, Settings(bootstrap_servers=kafka_bootstrap)).serdes[PLACED.name]
        producer = Producer({"bootstrap.servers": kafka_bootstrap})
        for order in orders(200):
            producer.produce(
                PLACED.name, serdes.value.encode(order), serdes.key.encode(order["customer_id"])
            )
        assert producer.flush(30) == 0
        _wait(lambda: _count(kafka_bootstrap, "orders.invoices") >= 180, 120, "180 invoices")
        assert _count(kafka_bootstrap, "orders.rejected") == 20
    finally:
        workers.send_signal(signal.SIGTERM)
        _, err = workers.communicate(timeout=60)
    assert workers.returncode == 0, err.decode()[-2000:]


def _compose(project: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker-compose", "-p", project, "-f", str(ROOT / "docker-compose.yml"), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_docker_compose_up_shows_generated_events_coming_out_of_the_pipeline() -> None:
    project = f"streamkit-smoke-{uuid.uuid4().hex[:6]}"
    port = free_port()
    env = {**os.environ, "KAFKA_HOST_PORT": str(port)}
    up = _compose(project, env, "up", "-d")
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        bootstrap = f"127.0.0.1:{port}"
        _wait(lambda: _count(bootstrap, "orders.invoices") > 0, 240, "invoices from compose")
        _wait(lambda: _count(bootstrap, "orders.large") > 0, 120, "large orders from compose")
        ps = _compose(project, env, "ps")
        assert "workers" in ps.stdout
        logs = _compose(project, env, "logs", "--no-color", "workers")
        assert "assigned" in logs.stdout + logs.stderr
    finally:
        down = _compose(project, env, "down", "-v", "--remove-orphans")
    assert down.returncode == 0, down.stderr[-2000:]


def _latest(bootstrap: str, topic: str) -> dict[str, Any]:
    """The latest value per key of ``topic`` (a null value deletes the key)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"read-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    latest: dict[str, Any] = {}
    try:
        info = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if info is None or info.error is not None or not info.partitions:
            return latest
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            for p in info.partitions
        }
        consumer.assign([TopicPartition(topic, p, low) for p, (low, _) in ends.items()])
        left = {p for p, (low, high) in ends.items() if high > low}
        deadline = time.monotonic() + 30
        while left and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            key = (msg.key() or b"").decode()
            if msg.value() is None:
                latest.pop(key, None)
            else:
                latest[key] = orjson.loads(msg.value())
            if (msg.offset() or 0) + 1 >= ends[msg.partition() or 0][1]:
                left.discard(msg.partition() or 0)
    except KafkaException as exc:
        if exc.args[0].code() in _NOT_READY:
            return {}
        raise
    finally:
        consumer.close()
    return latest


def test_docker_compose_cdc_profile_follows_postgres() -> None:
    project = f"streamkit-smoke-{uuid.uuid4().hex[:6]}"
    port, pg_port = free_port(), free_port()
    env = {**os.environ, "KAFKA_HOST_PORT": str(port), "POSTGRES_HOST_PORT": str(pg_port)}
    up = _compose(project, env, "--profile", "cdc", "up", "-d", "inventory", "cdc-connector")
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        bootstrap = f"127.0.0.1:{port}"

        def registered() -> bool:
            logs = _compose(project, env, "logs", "--no-color", "cdc-connector")
            return "shop-postgres running on http://connect:8083" in logs.stdout + logs.stderr

        _wait(registered, 300, "the connector registered and running")

        def psql(sql: str) -> None:
            done = _compose(
                project,
                env,
                "exec",
                "-T",
                "postgres",
                "psql",
                "-U",
                "postgres",
                "-h",
                "127.0.0.1",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            )
            assert done.returncode == 0, done.stderr[-2000:]

        psql(
            "INSERT INTO products VALUES (1, 'kettle', 'kitchen', 29.90, 10), "
            "(2, 'mug', 'kitchen', 5.50, 100)"
        )
        psql("UPDATE products SET stock = 9 WHERE id = 1")
        psql("DELETE FROM products WHERE id = 2")
        expected = {
            "1": {"id": 1, "name": "kettle", "category": "kitchen", "price": "29.90", "stock": 9}
        }

        def caught_up() -> bool:
            rows = _latest(bootstrap, "inventory.catalog")
            return {
                k: {f: v for f, v in row.items() if f != "lsn"} for k, row in rows.items()
            } == expected

        _wait(caught_up, 180, "the catalog to follow the products table")
    finally:
        down = _compose(project, env, "--profile", "cdc", "down", "-v", "--remove-orphans")
    assert down.returncode == 0, down.stderr[-2000:]
