"""Replay on a real broker: reset the group to a time, shadow a range, inspect topics."""

import datetime as dt
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from typing import Any

import orjson
from confluent_kafka import Producer

from streamkit.engines.kafka.offsets import alter_committed, group_members
from streamkit.ops.admin import admin_client, delete_topics
from tests.integration.helpers import create_app_topics
from tests.integration.runtime.conftest import ROOT, EchoSetup, wait_for

HOUR_MS = 3_600_000
# Recent enough that the broker's 7-day retention does not delete the records mid-test.
T0 = (int(time.time() * 1000) // HOUR_MS - 4) * HOUR_MS


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat()


def _produce_hours(echo: EchoSetup) -> None:
    """100 records at T0, 100 an hour later, 100 two hours later."""
    producer = Producer({**echo.config, "enable.idempotence": True})
    for n in range(300):
        stamp = T0 + (n // 100) * HOUR_MS + n
        producer.produce(echo.input, orjson.dumps({"n": n}), f"k{n % 13}".encode(), timestamp=stamp)
    assert producer.flush(30) == 0


def _cli(echo: EchoSetup, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        echo.command(*args),
        env=echo.env(**env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _drain(echo: EchoSetup, **env: str) -> None:
    run = echo.start("--commit-interval", "0.2", **env)
    wait_for(echo.caught_up, 90, "all committed")
    code, err = echo.stop(run)
    assert code == 0, err


def test_reset_to_a_time_reprocesses_exactly_that_range_and_dry_run_moves_nothing(
    echo: EchoSetup,
) -> None:
    _produce_hours(echo)
    _drain(echo)
    before = echo.committed()
    app = "tests.integration.apps.echo"
    dry = _cli(echo, "replay", "reset", "--app", app, "--to-datetime", _iso(T0 + HOUR_MS))
    assert dry.returncode == 0, dry.stderr
    assert "dry-run: 200 records would be reprocessed" in dry.stdout
    assert echo.committed() == before  # a dry run changes nothing

    live = echo.start()
    admin = admin_client(echo.config)
    wait_for(lambda: bool(group_members(admin, echo.group)[1]), 60, "an active member")
    refused = _cli(echo, "replay", "reset", "--app", app, "--to-earliest", "--execute")
    assert refused.returncode == 1
    assert "has active members" in refused.stderr
    assert echo.stop(live)[0] == 0
    assert echo.committed() == before

    done = _cli(
        echo, "replay", "reset", "--app", app, "--to-datetime", _iso(T0 + HOUR_MS), "--execute"
    )
    assert done.returncode == 0, done.stderr
    assert "200 records will be reprocessed" in done.stdout
    _drain(echo)
    outputs = echo.read(echo.output, 500, timeout=30)
    by_source = Counter((o["p"], o["o"]) for o in outputs)
    stamps = {(r["_partition"], r["_offset"]): r["n"] for r in echo.read(echo.input, 300)}
    for source, n in stamps.items():
        assert by_source[source] == (2 if n >= 100 else 1), (source, n)


def test_shadow_replay_leaves_the_group_alone_and_writes_the_same_bytes_twice(
    echo: EchoSetup,
) -> None:
    _produce_hours(echo)
    _drain(echo)
    before = echo.committed()
    outputs_before = echo.output_count()
    app = "tests.integration.apps.echo"
    targets = [f"{echo.output}-shadow-a", f"{echo.output}-shadow-b"]
    for target in targets:
        run = _cli(
            echo,
            "replay",
            "shadow",
            "--app",
            app,
            "--from",
            _iso(T0 + HOUR_MS),
            "--until",
            _iso(T0 + 2 * HOUR_MS),
            "--to-topic",
            target,
            ECHO_PID="0",
        )
        assert run.returncode == 0, run.stderr
        assert "read 100 records" in run.stdout
        assert f"{echo.output}: 100 → {target}" in run.stdout
    assert echo.committed() == before
    assert echo.output_count() == outputs_before

    def content(topic: str) -> list[Any]:
        records = echo.read_raw(topic)
        return sorted(
            (m.partition(), m.offset(), m.key(), m.value(), m.timestamp()) for m in records
        )

    first, second = (content(t) for t in targets)
    assert len(first) == 100
    assert first == second  # byte-identical, partition and offset included
    assert {orjson.loads(m[3])["n"] for m in first} == set(range(100, 200))

    empty = _cli(
        echo, "replay", "shadow", "--app", app, "--from", _iso(T0 + 5 * HOUR_MS), "--discard"
    )
    assert empty.returncode == 1
    assert "nothing to replay" in empty.stderr
    naive = _cli(echo, "replay", "reset", "--app", app, "--to-datetime", "2026-01-01T01:00:00")
    assert naive.returncode == 1
    assert "has no timezone" in naive.stderr
    unknown = _cli(echo, "replay", "reset", "--app", app, "--to-earliest", "--topic", "nope")
    assert "does not consume topic nope" in unknown.stderr


def test_topics_describe_lists_every_topic_with_policy_and_lag(echo: EchoSetup) -> None:
    created = _cli(echo, "topics", "create", "tests.integration.apps.echo", ECHO_DLQ="1")
    assert created.returncode == 0, created.stderr
    echo.produce(30)
    shown = _cli(echo, "topics", "describe", "--app", "tests.integration.apps.echo", ECHO_DLQ="1")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    dlq = f"{echo.group}-{echo.input}-dlq"
    assert any(
        line.startswith(echo.input) and "input" in line and "delete" in line for line in lines
    )
    assert any(line.startswith(dlq) and "dead letters" in line for line in lines)
    lag = [line for line in lines if line.startswith(echo.input) and line.split()[-1].isdigit()]
    assert len(lag) == echo.partitions
    assert sum(int(line.split()[-1]) for line in lag) == 30
    delete_topics(admin_client(echo.config), [dlq, f"{echo.group}-{echo.input}-parked"])


def test_reset_moves_the_apps_repartition_topics_to_their_end(
    kafka_bootstrap: str, kafka_config: dict[str, Any]
) -> None:
    # As Kafka Streams' reset tool does with internal topics: the inputs reprocessed route
    # their records into the repartition topics again.
    tag = uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        "STREAMKIT_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "JOIN_TAG": tag,
        "PYTHONPATH": str(ROOT),
    }
    app = "tests.integration.apps.joins"
    made = create_app_topics(app, env)
    admin = admin_client(kafka_config)
    try:
        orders, routed = f"join-orders-{tag}", f"join-{tag}-paid-inner-repartition"
        producer = Producer(kafka_config)
        for n in range(30):
            for topic in (orders, routed):
                producer.produce(topic, orjson.dumps({"n": n, "key": "k"}), b"k", partition=0)
        assert producer.flush(30) == 0
        alter_committed(admin, f"join-{tag}", {(orders, 0): 30, (routed, 0): 30})
        plan = subprocess.run(
            [sys.executable, "-m", "streamkit", "replay", "reset", "--app", app, "--to-earliest"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert plan.returncode == 0, plan.stderr
        lines = {tuple(line.split()[:2]): line.split()[2:] for line in plan.stdout.splitlines()}
        assert lines[(orders, "0")] == ["30", "0", "30"]  # current, new, to reprocess
        assert lines[(routed, "0")] == ["30", "30", "0"]  # to its end: nothing read twice
    finally:
        delete_topics(admin, made)
