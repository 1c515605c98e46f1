"""Records through a real broker with the console engine and the CLI."""

import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import orjson

from streamkit.ops.console import ConsoleRecord, consume_records, produce_records


def test_thousand_records_with_keys_and_headers_come_back_intact(
    kafka_config: dict[str, Any], topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory(partitions=3)
    sent = [
        ConsoleRecord(
            value=orjson.dumps({"n": i, "text": "é" * (i % 7)}),
            key=f"key-{i % 17}".encode(),
            headers=(("seq", str(i).encode()), ("bin", bytes([i % 256, 0xFF]))),
        )
        for i in range(1000)
    ]
    assert produce_records(kafka_config, topic, sent) == 1000
    got = list(
        consume_records(kafka_config, topic, from_beginning=True, max_records=1000, idle_timeout=20)
    )
    assert len(got) == 1000
    by_seq = {dict(r.headers)["seq"]: r for r in got}
    assert len(by_seq) == 1000
    for i, original in enumerate(sent):
        received = by_seq[str(i).encode()]
        assert received.key == original.key
        assert received.value == original.value
        assert received.headers == original.headers
    # per key, records keep their production order within a partition
    for key in {r.key for r in got}:
        seqs = [int(dict(r.headers)["seq"]) for r in got if r.key == key]
        assert seqs == sorted(seqs)
        assert len({r.partition for r in got if r.key == key}) == 1


def test_cli_produce_then_consume_json_lines(
    kafka_bootstrap: str, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory(partitions=2)
    env = {**os.environ, "STREAMKIT_BOOTSTRAP_SERVERS": kafka_bootstrap}
    lines = b"".join(
        orjson.dumps({"key": f"k{i}", "value": {"i": i}, "headers": [["src", "test"]]}) + b"\n"
        for i in range(50)
    )
    produced = subprocess.run(
        [sys.executable, "-m", "streamkit", "produce", topic],
        input=lines,
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert produced.returncode == 0, produced.stderr
    assert b"produced 50 records" in produced.stderr
    consumed = subprocess.run(
        [sys.executable, "-m", "streamkit", "consume", topic, "--from-beginning", "--max", "50"],
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert consumed.returncode == 0, consumed.stderr
    docs = [orjson.loads(line) for line in consumed.stdout.splitlines()]
    assert sorted(d["value"]["i"] for d in docs) == list(range(50))
    assert all(d["headers"] == [["src", "test"]] and d["topic"] == topic for d in docs)
    assert {d["key"] for d in docs} == {f"k{i}" for i in range(50)}


def test_produce_to_a_missing_topic_fails_with_one_line(kafka_bootstrap: str) -> None:
    env = {**os.environ, "STREAMKIT_BOOTSTRAP_SERVERS": kafka_bootstrap}
    done = subprocess.run(
        [sys.executable, "-m", "streamkit", "produce", "no-such-topic-x1", "--timeout", "5"],
        input='{"value": 1}\n',
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: ")
    assert "no-such-topic-x1" in done.stderr
