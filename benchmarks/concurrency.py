"""The I/O-bound benchmark: a handler that waits 20 ms per record, 10,000 keys, 1 worker.

    python -m benchmarks.concurrency [--records 100000] [--concurrency 200] [--runs 3]

The dataset: ``--records`` small JSON events keyed by one of ``--keys`` keys. streamkit runs
an ``async def`` processor with ``concurrency=N`` in key order (``benchmarks/peers/
streamkit_async.py``); Confluent's Parallel Consumer (Java) runs KEY ordering with
``maxConcurrency=N``, its worker threads sleeping 20 ms (``benchmarks/parallel/``, built by
``make bench-peers``). A run is done when the output holds one record per input (a
duplicate or a loss shows as a wrong count on a clean run); its rate is the records over
the time between the first and the last output's append. The bound is what N calls of
20 ms at once can do: ``N / 0.020`` records/s. Runs go round-robin; the median of each is
reported with its share of the bound.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import uuid
from pathlib import Path

import orjson
from confluent_kafka import Producer

from benchmarks._broker import Create, bench_broker, run_until_written
from benchmarks.harness import PARTITIONS, ROOT
from streamkit.ops.admin import TopicSpec

APPEND_TIME = {"message.timestamp.type": "LogAppendTime"}
PARALLEL = ROOT / "benchmarks" / "parallel" / "target"
PEERS = {
    "streamkit": [sys.executable, "-m", "streamkit", "run", "benchmarks.peers.streamkit_async"],
    "parallel": [
        "java",
        "-Xmx512m",
        "-cp",
        f"{PARALLEL}/classes:{PARALLEL}/lib/*",
        "bench.BenchParallel",
    ],
}
LABELS = {
    "streamkit": "streamkit (`async def`, concurrency={n}, key order)",
    "parallel": "Confluent Parallel Consumer 0.5.3.2 (maxConcurrency={n}, KEY order)",
}


def produce(bootstrap: str, topic: str, records: int, keys: int) -> None:
    """``records`` JSON events keyed by one of ``keys`` keys, round-robin."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for n in range(records):
        key = f"key-{n % keys}"
        while True:
            try:
                producer.produce(topic, orjson.dumps({"n": n, "key": key}), key.encode())
                break
            except BufferError:
                producer.poll(0.1)
    if producer.flush(60):
        raise RuntimeError("the dataset was not fully written")


def run_once(
    peer: str,
    bootstrap: str,
    source: str,
    records: int,
    concurrency: int,
    wait_ms: int,
    create: Create,
) -> tuple[float, float]:
    """One run of ``peer``: records/s between the first and the last output, peak RSS (MB)."""
    run_id = uuid.uuid4().hex[:8]
    output, group = f"bench-async-out-{run_id}", f"bench-async-{run_id}"
    create([TopicSpec(output, PARTITIONS, 1, APPEND_TIME)])
    env = {
        **os.environ,
        "STREAMKIT_BOOTSTRAP_SERVERS": bootstrap,
        "BENCH_BOOTSTRAP": bootstrap,
        "BENCH_INPUT": source,
        "BENCH_OUTPUT": output,
        "BENCH_GROUP": group,
        "BENCH_PARTITIONS": str(PARTITIONS),
        "BENCH_CONCURRENCY": str(concurrency),
        "BENCH_WAIT_MS": str(wait_ms),
        "PYTHONPATH": str(ROOT),
        "STREAMKIT_STATE_DIR": tempfile.mkdtemp(prefix="bench-async-"),
    }
    try:
        run = run_until_written(
            peer, PEERS[peer], env, bootstrap, output, records, timeout=max(300, records / 200)
        )
    finally:
        shutil.rmtree(env["STREAMKIT_STATE_DIR"], ignore_errors=True)
    return run.rate(records), run.rss_mb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--wait-ms", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--peers", default="streamkit,parallel")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    peers = args.peers.split(",")
    if "parallel" in peers and not (PARALLEL / "classes").exists():
        print("skipping parallel: it is not built (make bench-peers)")
        peers.remove("parallel")
    with bench_broker() as (bootstrap, create, _):
        source = f"bench-async-in-{uuid.uuid4().hex[:8]}"
        create([TopicSpec(source, PARTITIONS)])
        print(f"producing {args.records:,} records ({args.keys:,} keys)")
        produce(bootstrap, source, args.records, args.keys)
        runs: dict[str, list[tuple[float, float]]] = {p: [] for p in peers}
        for i in range(args.runs):
            for peer in peers:
                rate, rss = run_once(
                    peer, bootstrap, source, args.records, args.concurrency, args.wait_ms, create
                )
                runs[peer].append((rate, rss))
                print(f"{peer} run {i + 1}: {rate:,.0f} records/s, {rss:.0f} MB", flush=True)
        print(report(runs, args).read_text())
    return 0


def report(runs: dict[str, list[tuple[float, float]]], args: argparse.Namespace) -> Path:
    """concurrency.md in ``args.out``: each median, its share of the bound and its ratio to
    Parallel Consumer."""
    bound = args.concurrency / (args.wait_ms / 1000)
    medians = {p: sorted(r for r, _ in rs)[len(rs) // 2] for p, rs in runs.items() if rs}
    parallel = medians.get("parallel")
    lines = [
        "# I/O-bound handler",
        "",
        f"{args.records:,} JSON events, {args.keys:,} keys, {PARTITIONS} partitions; a handler "
        f"that waits {args.wait_ms} ms per record, 1 worker, concurrency {args.concurrency}, "
        f"key order; median of {args.runs} runs taken round-robin on one broker (`python -m "
        "benchmarks.concurrency`; how the rate is taken: its module docstring). Settings and "
        "where they come from: `benchmarks/peers/streamkit_async.py` and "
        "`benchmarks/parallel/` (`BenchParallel.java`).",
        "",
        "| implementation | records/s | share of the bound | vs Parallel Consumer | peak RSS MB |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| bound ({args.concurrency} / {args.wait_ms / 1000:g} s) | {bound:,.0f} | 100% | - | - |",
    ]
    for peer, rate in medians.items():
        ratio = f"{rate / parallel:.2f}x" if parallel else "-"
        rss = max(r for _, r in runs[peer])
        label = LABELS[peer].format(n=args.concurrency)
        lines.append(f"| {label} | {rate:,.0f} | {rate / bound:.0%} | {ratio} | {rss:.0f} |")
    lines += ["", "Every run (records/s):", ""]
    lines += [f"- {p}: " + ", ".join(f"{r:,.0f}" for r, _ in rs) for p, rs in runs.items()]
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "concurrency.md"
    path.write_text("\n".join(lines) + "\n")
    return path


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
