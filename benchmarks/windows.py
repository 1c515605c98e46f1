"""The windowed-count benchmark: events per key per 1-minute tumbling window, final
results only, by streamkit, Quix Streams and Kafka Streams on the same broker and data.

    python -m benchmarks.windows [--records 1000000] [--keys 2000] [--minutes 100] [--runs 3]

The dataset: ``--records`` BenchEvents (the map benchmark's records) keyed by one of
``--keys`` users, their record timestamps spread evenly over ``--minutes`` minutes ending
an hour ago, written in time order; then, in each partition, two records a minute past
the end under keys of their own, which move every partition's stream time past every
window of the data (whichever way an implementation closes a window at a partition's
last record). Every implementation decodes each event, counts it in its key's window of
the record timestamp (no grace) and writes one JSON result per window when the window
closes (its partition's stream time passes the window's end).

A run is done when its output holds exactly one result per window of the data (a missing
or a duplicate result shows as a wrong count; the tail's own windows never close). Its rate
is the records between the first and the last closing window's end (in event time) over
the time between the first and the last result's append: the span a run spends in its
steady state, without its start-up. Runs go round-robin; the median is reported.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Producer

from benchmarks._broker import Create, bench_broker, run_until_written
from benchmarks.harness import PARTITIONS, ROOT, SCHEMAS, _python
from benchmarks.peers.work import event
from streamkit.contracts.repository import SchemaRepository
from streamkit.contracts.serde import AvroSerde
from streamkit.ops.admin import TopicSpec

MINUTE = 60_000
APPEND_TIME = {"message.timestamp.type": "LogAppendTime"}


@dataclass
class Peer:
    """One implementation of the windowed count."""

    name: str
    label: str
    command: list[str]
    available: bool = True
    setup: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)


def _peers() -> list[Peer]:
    kstreams = ROOT / "benchmarks/kstreams/target"
    run = [
        sys.executable,
        "-m",
        "streamkit",
        "run",
        "benchmarks.peers.streamkit_windows",
        "--workers",
        "1",
        "--log-level",
        "warning",
    ]
    setup = [
        sys.executable,
        "-m",
        "streamkit",
        "topics",
        "create",
        "benchmarks.peers.streamkit_windows",
    ]
    return [
        Peer("streamkit", "streamkit, 1 worker (memory store)", run, setup=setup),
        Peer(
            "streamkit-rocksdb",
            "streamkit, 1 worker (RocksDB store)",
            run,
            setup=setup,
            env={"BENCH_STORE": "rocksdb"},
        ),
        Peer(
            "quix",
            "Quix Streams (RocksDB store)",
            [_python(".venv-bench-quix"), "-m", "benchmarks.peers.quix_windows"],
            Path(_python(".venv-bench-quix")).exists(),
        ),
        Peer(
            "kstreams",
            "Kafka Streams, 1 thread (RocksDB store)",
            [
                "java",
                "-Xmx512m",
                "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                "-cp",
                f"{kstreams}/classes:{kstreams}/lib/*",
                "bench.BenchStreams",
            ],
            (kstreams / "classes").exists(),
        ),
    ]


@dataclass
class Dataset:
    """What was written, and what a correct run writes back."""

    topic: str
    records: int
    closing_windows: int
    steady_records: int


def produce(bootstrap: str, topic: str, records: int, keys: int, minutes: int) -> Dataset:
    """The dataset (see the module docstring) and the windows that close over it."""
    serde = AvroSerde(SchemaRepository.from_directory(SCHEMAS), "BenchEvent")
    rng = random.Random(3)
    end = (int(time.time() * 1000) // MINUTE - 60) * MINUTE  # an hour ago, on a minute
    start, step = end - minutes * MINUTE, minutes * MINUTE / records
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 50,
            "batch.size": 1_000_000,
            "compression.type": "lz4",
        }
    )
    windows: set[tuple[str, int]] = set()
    stamps = []

    def send(key: str, ts: int, n: int) -> None:
        record = event(n, rng, ts=ts)
        record["user"] = key
        while True:
            try:
                producer.produce(topic, serde.encode(record), key.encode(), timestamp=ts)
                return
            except BufferError:
                producer.poll(0.1)

    for n in range(records):
        ts = start + int(n * step)
        user = f"user-{rng.randint(1, keys):05d}"
        windows.add((user, ts - ts % MINUTE))
        stamps.append(ts)
        send(user, ts, n)
        if n % 10_000 == 0:
            producer.poll(0)
    for partition in range(PARTITIONS):  # the tail: see the module docstring
        key = next(
            k
            for i in range(10_000)
            if zlib.crc32((k := f"tail-{i}").encode()) % PARTITIONS == partition
        )  # librdkafka's partitioner
        for delay in (61_000, 62_000):
            send(key, end + delay, records)
    if producer.flush(120):
        raise RuntimeError("the dataset was not acknowledged in time")
    first_end = min(w for _, w in windows) + MINUTE
    last_end = max(w for _, w in windows) + MINUTE
    steady = sum(1 for ts in stamps if first_end <= ts < last_end)
    return Dataset(topic, records, len(windows), steady)


def run_once(
    peer: Peer, bootstrap: str, data: Dataset, create: Create, made: list[str]
) -> tuple[float, float]:
    """One run of ``peer``: records/s in its steady state, and peak RSS (MB)."""
    run_id = uuid.uuid4().hex[:8]
    output = f"bench-win-out-{peer.name}-{run_id}"
    create([TopicSpec(output, PARTITIONS, 1, APPEND_TIME)])
    group = f"bench-win-{peer.name}-{run_id}"
    env = {
        **os.environ,
        "BENCH_BOOTSTRAP": bootstrap,
        "STREAMKIT_BOOTSTRAP_SERVERS": bootstrap,
        "BENCH_INPUT": data.topic,
        "BENCH_OUTPUT": output,
        "BENCH_GROUP": group,
        "BENCH_WORKLOAD": "windows",
        "BENCH_PARTITIONS": str(PARTITIONS),
        "PYTHONPATH": str(ROOT),
        "STREAMKIT_STATE_DIR": tempfile.mkdtemp(prefix="bench-win-"),
        **peer.env,
    }
    env["BENCH_STATE_DIR"] = env["STREAMKIT_STATE_DIR"]
    if peer.setup:
        subprocess.run(peer.setup, env=env, cwd=ROOT, check=True, capture_output=True)
        made += [f"{group}-per-user-changelog", f"{group}-per-user-late"]
    try:
        run = run_until_written(
            peer.name,
            peer.command,
            env,
            bootstrap,
            output,
            data.closing_windows,
            timeout=max(300, data.records / 2000),
        )
    finally:
        shutil.rmtree(env["STREAMKIT_STATE_DIR"], ignore_errors=True)
    return run.rate(data.steady_records), run.rss_mb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=2000)
    parser.add_argument("--minutes", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--peers", default="streamkit,streamkit-rocksdb,quix,kstreams")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    peers = [p for p in _peers() if p.name in args.peers.split(",")]
    for peer in [p for p in peers if not p.available]:
        print(f"skipping {peer.name}: its environment is not set up (make bench-peers)")
    peers = [p for p in peers if p.available]
    with bench_broker() as (bootstrap, create, made):
        source = f"bench-win-in-{uuid.uuid4().hex[:8]}"
        create([TopicSpec(source, PARTITIONS)])
        print(f"producing {args.records:,} records ({args.keys:,} keys, {args.minutes} minutes)")
        data = produce(bootstrap, source, args.records, args.keys, args.minutes)
        print(
            f"{data.closing_windows:,} windows close; {data.steady_records:,} records between "
            "the first and the last closing window's end"
        )
        runs: dict[str, list[tuple[float, float]]] = {p.name: [] for p in peers}
        for i in range(args.runs):
            for peer in peers:
                rate, rss = run_once(peer, bootstrap, data, create, made)
                runs[peer.name].append((rate, rss))
                print(f"{peer.name} run {i + 1}: {rate:,.0f} records/s, {rss:.0f} MB", flush=True)
        print(report(peers, runs, data, args).read_text())
    return 0


def report(
    peers: list[Peer],
    runs: dict[str, list[tuple[float, float]]],
    data: Dataset,
    args: argparse.Namespace,
) -> Path:
    """windows.md in ``args.out``: the median of each peer's runs, its ratio to Quix."""
    medians = {n: sorted(r for r, _ in rs)[len(rs) // 2] for n, rs in runs.items() if rs}
    quix = medians.get("quix")
    lines = [
        "# Windowed count",
        "",
        f"{data.records:,} BenchEvents, {args.keys:,} keys, timestamps over {args.minutes} "
        f"minutes; 1-minute tumbling windows, final results only: {data.closing_windows:,} "
        f"windows close. {PARTITIONS} partitions, median of {args.runs} runs taken round-robin "
        "on one broker (`python -m benchmarks.windows`; how the rate is taken: its module "
        "docstring). Each implementation's settings, and the docs they come from, are in "
        "the docstring of its file: `benchmarks/peers/streamkit_windows.py`, "
        "`benchmarks/peers/quix_windows.py` and `benchmarks/kstreams/` (`BenchStreams.java`).",
        "",
        "| implementation | records/s | vs Quix Streams | peak RSS MB (per process) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for peer in peers:
        rate = medians[peer.name]
        ratio = f"{rate / quix:.2f}x" if quix else "-"
        rss = max(r for _, r in runs[peer.name])
        lines.append(f"| {peer.label} | {rate:,.0f} | {ratio} | {rss:.0f} |")
    lines += ["", "Every run (records/s):", ""]
    lines += [f"- {n}: " + ", ".join(f"{r:,.0f}" for r, _ in rs) for n, rs in runs.items()]
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "windows.md"
    path.write_text("\n".join(lines) + "\n")
    return path


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
