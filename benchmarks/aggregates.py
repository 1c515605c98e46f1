"""The keyed-aggregate benchmark: a count and sum per key over JSON events, with its
changelog, by streamkit with its memory store and with its RocksDB store, at few and at
many keys, on the same broker and data.

    python -m benchmarks.aggregates [--records 1000000] [--keys 10000,1000000] [--runs 3]

Every record is folded into its key's state, the new state written to the changelog and
(as the aggregate's projection) to the output. A run is done when the output holds one
record per input; its rate is taken over the steady part of the output (see
:mod:`benchmarks._measure`), its memory as the peak RSS of all its processes. Runs go
round-robin in a random order; the table gives the median (min-max).
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
import uuid
from bisect import bisect_left
from pathlib import Path

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition

from benchmarks._broker import Create, bench_broker, run_until_written, send
from benchmarks._measure import WARMUP
from benchmarks.harness import ROOT
from streamkit.engines.kafka.clients import read_until
from streamkit.ops.admin import TopicSpec

PARTITIONS = 4
APPEND_TIME = {"message.timestamp.type": "LogAppendTime"}
STORES = ("memory", "rocksdb")


def produce(bootstrap: str, topic: str, records: int, keys: int) -> None:
    """``records`` JSON events, keyed by one of ``keys`` users (each key seen once before
    any is seen twice when ``keys >= records``)."""
    rng = random.Random(5)
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 50,
            "batch.size": 1_000_000,
            "compression.type": "lz4",
        }
    )
    for n in range(records):
        user = f"user-{(n if keys >= records else rng.randrange(keys)):07d}"
        value = orjson.dumps({"id": n, "user": user, "amount": rng.randint(1, 1000)})
        send(producer, topic, value, user.encode(), n)
    if producer.flush(120):
        raise RuntimeError("the dataset was not acknowledged in time")


def steady_rate(bootstrap: str, topic: str) -> float:
    """Records/s over the steady part of ``topic`` (append times only)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"agg-read-{topic}",
            "enable.auto.commit": False,
        }
    )
    try:
        ranges = {
            (topic, p): consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            for p in range(PARTITIONS)
        }
        times: dict[int, list[int]] = {p: [] for p in range(PARTITIONS)}
        for msg in read_until(consumer, ranges, stall=60):
            times[msg.partition() or 0].append(msg.timestamp()[1])
    finally:
        consumer.close()
    skipped = {p: int(len(t) * WARMUP) for p, t in times.items()}
    start = max(t[skipped[p]] for p, t in times.items() if len(t) > skipped[p])
    end = max(t[-1] for t in times.values() if t)
    measured = sum(len(t) - bisect_left(t, start) for t in times.values())
    return measured / max(0.001, (end - start) / 1000)


def run_once(
    store: str, bootstrap: str, source: str, records: int, create: Create, made: list[str]
) -> tuple[float, float, float]:
    """One run with ``store``: records/s in the steady part, peak RSS (MB) of all processes
    and of the worker alone."""
    run_id = uuid.uuid4().hex[:8]
    output, group = f"bench-agg-out-{store}-{run_id}", f"bench-agg-{store}-{run_id}"
    create([TopicSpec(output, PARTITIONS, 1, APPEND_TIME)])
    made.append(f"{group}-sums-changelog")  # made by `streamkit topics create` below
    state = tempfile.mkdtemp(prefix="bench-agg-")
    env = {
        **os.environ,
        "STREAMKIT_BOOTSTRAP_SERVERS": bootstrap,
        "BENCH_INPUT": source,
        "BENCH_OUTPUT": output,
        "BENCH_GROUP": group,
        "BENCH_STORE": store,
        "BENCH_PARTITIONS": str(PARTITIONS),
        "PYTHONPATH": str(ROOT),
        "STREAMKIT_STATE_DIR": state,
    }
    app = "benchmarks.peers.streamkit_aggregate"
    subprocess.run(
        [sys.executable, "-m", "streamkit", "topics", "create", app],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    try:
        run = run_until_written(
            f"streamkit-{store}",
            [sys.executable, "-m", "streamkit", "run", app, "--log-level", "warning"],
            env,
            bootstrap,
            output,
            records,
            timeout=max(300, records / 2000),
        )
    finally:
        shutil.rmtree(state, ignore_errors=True)
    return steady_rate(bootstrap, output), run.rss_mb, run.worker_rss_mb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--keys", default="10000,1000000")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    order = random.Random(args.runs)
    results: dict[tuple[int, str], list[tuple[float, float, float]]] = {}
    with bench_broker() as (bootstrap, create, made):
        for keys in [int(k) for k in args.keys.split(",")]:
            source = f"bench-agg-in-{keys}-{uuid.uuid4().hex[:8]}"
            create([TopicSpec(source, PARTITIONS)])
            print(f"producing {args.records:,} records over {keys:,} keys", flush=True)
            produce(bootstrap, source, args.records, keys)
            for i in range(args.runs):
                for store in order.sample(STORES, len(STORES)):
                    rate, rss, worker = run_once(
                        store, bootstrap, source, args.records, create, made
                    )
                    results.setdefault((keys, store), []).append((rate, rss, worker))
                    print(
                        f"{keys:,} keys, {store} run {i + 1}: {rate:,.0f} records/s, "
                        f"{rss:.0f} MB, worker {worker:.0f} MB",
                        flush=True,
                    )
    print(report(results, args).read_text())
    return 0


def report(
    results: dict[tuple[int, str], list[tuple[float, float, float]]], args: argparse.Namespace
) -> Path:
    """aggregates.md in ``args.out``."""

    def median(values: list[float]) -> float:
        return sorted(values)[(len(values) - 1) // 2]

    lines = [
        "# Keyed aggregate",
        "",
        f"{args.records:,} JSON events on {PARTITIONS} partitions, a count and a sum per key "
        "with its changelog, every new state to the output; 1 worker; runs in a random "
        "order (`python -m benchmarks.aggregates`). Rates over the steady part of the output "
        "(the first 20% of each partition left out); peak RSS of all processes (the "
        "supervisor and the worker) and of the worker alone, the largest of the runs.",
        "",
        "| keys | store | records/s median (min-max) | vs memory | peak RSS MB, all "
        "processes | peak RSS MB, the worker |",
        "| ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for (keys, store), runs in results.items():
        rates, rss, worker = ([run[i] for run in runs] for i in range(3))
        memory = results.get((keys, "memory"))
        ratio = median(rates) / median([run[0] for run in memory]) if memory else 0.0
        lines.append(
            f"| {keys:,} | {store} | {median(rates):,.0f} ({min(rates):,.0f}-"
            f"{max(rates):,.0f}) | {ratio:.2f}x | {max(rss):.0f} | {max(worker):.0f} |"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "aggregates.md"
    path.write_text("\n".join(lines) + "\n")
    return path


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
