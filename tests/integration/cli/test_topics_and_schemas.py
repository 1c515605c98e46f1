"""`streamkit topics create` and Avro through `produce/consume --schema`, on a real broker."""

import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import orjson

from streamkit.ops.admin import admin_client, cleanup_policies, delete_topics

ROOT = Path(__file__).resolve().parents[3]


def _streamkit(
    *args: str, env: dict[str, str], stdin: bytes = b""
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "streamkit", *args],
        input=stdin,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def test_topics_create_is_idempotent_and_reports_a_partition_mismatch(
    kafka_bootstrap: str, topic_factory: Callable[..., str]
) -> None:
    suffix = uuid.uuid4().hex[:8]
    env = {
        "STREAMKIT_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "ECHO_INPUT": f"tc-in-{suffix}",
        "ECHO_OUTPUT": f"tc-out-{suffix}",
        "ECHO_PARTITIONS": "3",
    }
    try:
        first = _streamkit("topics", "create", "tests.integration.apps.echo", env=env)
        assert first.returncode == 0, first.stderr
        assert f"created  tc-in-{suffix} (3 partitions)" in first.stdout.decode()
        again = _streamkit("topics", "create", "tests.integration.apps.echo", env=env)
        assert again.returncode == 0, again.stderr
        assert f"exists   tc-in-{suffix} (3 partitions)" in again.stdout.decode()
        assert "created" not in again.stdout.decode()
        mismatch = _streamkit(
            "topics", "create", "tests.integration.apps.echo", env={**env, "ECHO_PARTITIONS": "5"}
        )
        assert mismatch.returncode == 1
        assert mismatch.stderr.decode().strip() == (
            f"error: tc-in-{suffix} has 3 partitions; app echo declares 5; "
            f"tc-out-{suffix} has 3 partitions; app echo declares 5"
        )
    finally:
        delete_topics(
            admin_client({"bootstrap.servers": kafka_bootstrap}),
            [env["ECHO_INPUT"], env["ECHO_OUTPUT"]],
        )


def test_produce_and_consume_with_schema_encode_and_decode_avro(
    kafka_bootstrap: str, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory(partitions=2)
    env = {
        "STREAMKIT_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "STREAMKIT_SCHEMAS_DIR": str(ROOT / "schemas"),
    }
    lines = b"".join(
        orjson.dumps(
            {
                "key": f"c-{i}",
                "value": {"order_id": f"o-{i}", "customer_id": f"c-{i}", "reason": "r"},
            }
        )
        + b"\n"
        for i in range(20)
    )
    produced = _streamkit("produce", topic, "--schema", "OrderRejected", env=env, stdin=lines)
    assert produced.returncode == 0, produced.stderr
    raw = _streamkit("consume", topic, "--from-beginning", "--max", "20", env=env)
    assert raw.returncode == 0, raw.stderr
    first_raw = orjson.loads(raw.stdout.splitlines()[0])["value"]
    assert isinstance(first_raw, dict)
    assert "b64" in first_raw  # Avro bytes, not JSON
    decoded = _streamkit(
        "consume", topic, "--from-beginning", "--max", "20", "--schema", "OrderRejected", env=env
    )
    assert decoded.returncode == 0, decoded.stderr
    values = [orjson.loads(line)["value"] for line in decoded.stdout.splitlines()]
    assert sorted(v["order_id"] for v in values) == sorted(f"o-{i}" for i in range(20))


def test_produce_with_schema_refuses_an_event_that_breaks_the_contract(
    kafka_bootstrap: str, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory()
    env = {
        "STREAMKIT_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "STREAMKIT_SCHEMAS_DIR": str(ROOT / "schemas"),
    }
    done = _streamkit(
        "produce",
        topic,
        "--schema",
        "OrderRejected",
        env=env,
        stdin=b'{"value": {"order_id": "o"}}\n',
    )
    assert done.returncode == 1
    message = done.stderr.decode().strip()
    assert message.startswith("error: stdin:1: event violates the contract")
    assert "OrderRejected" in message


def test_topics_create_makes_plain_topics_with_their_configs(kafka_bootstrap: str) -> None:
    name = f"plain-{uuid.uuid4().hex[:8]}"
    env = {"STREAMKIT_BOOTSTRAP_SERVERS": kafka_bootstrap}
    missing = _streamkit("produce", name, env=env, stdin=b'{"value": 1}\n')
    assert missing.returncode == 1
    assert f"streamkit topics create --topic {name}" in missing.stderr.decode()
    try:
        made = _streamkit(
            "topics",
            "create",
            "--topic",
            name,
            "--partitions",
            "3",
            "--config",
            "cleanup.policy=compact",
            env=env,
        )
        assert made.returncode == 0, made.stderr
        assert f"created  {name} (3 partitions)" in made.stdout.decode()
        admin = admin_client({"bootstrap.servers": kafka_bootstrap})
        assert cleanup_policies(admin, [name]) == {name: "compact"}
        produced = _streamkit("produce", name, env=env, stdin=b'{"key": "k", "value": 1}\n')
        assert produced.returncode == 0, produced.stderr
        bad = _streamkit("topics", "create", "--topic", name, "--config", "nonsense", env=env)
        assert bad.returncode == 1
        assert "expected KEY=VALUE" in bad.stderr.decode()
    finally:
        delete_topics(admin_client({"bootstrap.servers": kafka_bootstrap}), [name])


def test_topics_create_checks_the_contracts_before_creating_anything(
    kafka_bootstrap: str,
) -> None:
    name = f"typo-{uuid.uuid4().hex[:8]}"
    env = {"STREAMKIT_BOOTSTRAP_SERVERS": kafka_bootstrap, "TYPO_TOPIC": name}
    done = _streamkit("topics", "create", "tests.integration.apps.typo", env=env)
    assert done.returncode == 1
    assert "unknown schema 'OrderPlacd'; did you mean 'OrderPlaced'" in done.stderr.decode()
    assert (
        name
        not in admin_client({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=10).topics
    )
