"""The peer benchmark: the same at-least-once consume → decode → map → encode → produce
work, on the same broker and dataset, by a raw confluent-kafka loop (the ceiling: the same
fetch settings and batch loop as streamkit), streamkit (1 and 2 workers) and, when their
environments exist, faust-streaming, Quix Streams and Kafka Streams (1 and 2 threads),
each set up as its own docs recommend for throughput (see each peer's file).

Each round runs every implementation once, in a random order; every run's output is read
back whole: counted, duplicates found, a sample decoded and compared with the map's
result. Throughput is over the steady part of the output (see :mod:`benchmarks._measure`:
the first 20% of each output partition is warm-up, for everyone), CPU seconds and peak RSS
over every process of the implementation, latency at a fixed rate from each event's `ts`
to its output's append time. Versions of everything are recorded. Results go to a
markdown table and a chart. `make bench` runs it; `python -m benchmarks.harness --help`
tells the options.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer

from benchmarks._broker import Create, bench_broker, send
from benchmarks._measure import Outputs, Tree, count, read_outputs, stop
from benchmarks._report import report, versions
from benchmarks.peers.work import SCHEMAS, event, transform
from streamkit.contracts import AvroSerde, SchemaRepository
from streamkit.ops.admin import TopicSpec

ROOT = Path(__file__).resolve().parent.parent
PARTITIONS = 8
APPEND_TIME = {"message.timestamp.type": "LogAppendTime"}
SAMPLE_EVERY = 997  # ids whose output is decoded and compared with the map's result


@dataclass
class Variant:
    """One implementation: how to start it, and whether it can run here."""

    name: str
    label: str
    command: Callable[[dict[str, str]], list[str]]
    available: Callable[[], bool] = lambda: True
    env: dict[str, str] = field(default_factory=dict)


def _python(venv: str) -> str:
    return str(ROOT / venv / "bin" / "python")


def _kstreams(env: dict[str, str]) -> list[str]:
    return [
        "java",
        "-Xmx512m",
        "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
        "-cp",
        f"{ROOT}/benchmarks/kstreams/target/classes:{ROOT}/benchmarks/kstreams/target/lib/*",
        "bench.BenchStreams",
    ]


def _built() -> bool:
    return (ROOT / "benchmarks/kstreams/target/classes").exists()


VARIANTS = [
    Variant(
        "raw",
        "(a) raw confluent-kafka loop",
        lambda env: [sys.executable, "-m", "benchmarks.peers.raw_loop"],
    ),
    Variant(
        "streamkit-1",
        "(b) streamkit, 1 worker",
        lambda env: [
            sys.executable,
            "-m",
            "streamkit",
            "run",
            "benchmarks.peers.streamkit_app",
            "--workers",
            "1",
            "--log-level",
            "warning",
        ],
    ),
    Variant(
        "streamkit-1-fastavro",
        "(b') streamkit, 1 worker, fastavro only",
        lambda env: [
            sys.executable,
            "-m",
            "streamkit",
            "run",
            "benchmarks.peers.streamkit_app",
            "--workers",
            "1",
            "--log-level",
            "warning",
        ],
        env={"STREAMKIT_AVRO_CODEC": "fastavro"},
    ),
    Variant(
        "streamkit-2",
        "(c) streamkit, 2 workers",
        lambda env: [
            sys.executable,
            "-m",
            "streamkit",
            "run",
            "benchmarks.peers.streamkit_app",
            "--workers",
            "2",
            "--log-level",
            "warning",
        ],
    ),
    Variant(
        "faust",
        "(d) faust-streaming (uvloop)",
        lambda env: [
            _python(".venv-bench-faust"),
            "-m",
            "benchmarks.peers.faust_app",
            "-L",
            "uvloop",
            "worker",
            "--loglevel",
            "warn",
            "--without-web",
        ],
        Path(_python(".venv-bench-faust")).exists,
    ),
    Variant(
        "quix",
        "(e) Quix Streams",
        lambda env: [_python(".venv-bench-quix"), "-m", "benchmarks.peers.quix_app"],
        Path(_python(".venv-bench-quix")).exists,
    ),
    Variant(
        "kstreams-1",
        "(f) Kafka Streams (Java), 1 thread",
        _kstreams,
        _built,
        {"BENCH_THREADS": "1"},
    ),
    Variant(
        "kstreams-2",
        "(g) Kafka Streams (Java), 2 threads",
        _kstreams,
        _built,
        {"BENCH_THREADS": "2"},
    ),
]


@dataclass
class Result:
    """Every run of one implementation."""

    variant: str
    rates: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    processes: int = 0
    duplicates: int = 0
    checked: int = 0
    latency_runs: list[tuple[float, float]] = field(default_factory=list)

    @staticmethod
    def median(values: list[float]) -> float:
        """The median (the lower one of an even count)."""
        ordered = sorted(values)
        return ordered[(len(ordered) - 1) // 2] if ordered else float("nan")


def _produce_dataset(bootstrap: str, topic: str, count: int, seed: int = 1) -> dict[int, Any]:
    """The dataset; the expected output of every ``SAMPLE_EVERY``-th id."""
    serde = AvroSerde(SchemaRepository.from_directory(SCHEMAS), "BenchEvent")
    rng = random.Random(seed)
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 50,
            "batch.size": 1_000_000,
            "compression.type": "lz4",
        }
    )
    expected = {}
    for n in range(count):
        record = event(n, rng)
        if n % SAMPLE_EVERY == 0:
            expected[n] = transform(record)
        send(producer, topic, serde.encode(record), record["user"].encode(), n)
    if producer.flush(120):
        raise RuntimeError("the dataset was not acknowledged in time")
    return expected


def run_once(
    variant: Variant,
    bootstrap: str,
    source: str,
    records: int,
    expected: dict[int, Any],
    create: Create,
) -> tuple[Outputs, Tree]:
    """One throughput run of ``variant`` over the ``records`` records of ``source``: its
    output read back, and its process tree's CPU and memory. The output topic is made
    with ``create`` (deleted at the end, see :func:`main`)."""
    run_id = uuid.uuid4().hex[:8]
    output = f"bench-out-{variant.name}-{run_id}"
    create([TopicSpec(output, PARTITIONS, 1, APPEND_TIME)])
    env = {
        **os.environ,
        "BENCH_BOOTSTRAP": bootstrap,
        "STREAMKIT_BOOTSTRAP_SERVERS": bootstrap,
        "BENCH_INPUT": source,
        "BENCH_OUTPUT": output,
        "BENCH_GROUP": f"bench-{variant.name}-{run_id}",
        "BENCH_PARTITIONS": str(PARTITIONS),
        "PYTHONPATH": str(ROOT),
        **variant.env,
    }
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": f"probe-{run_id}"})
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed below; a file, never a full pipe
    process = subprocess.Popen(
        variant.command(env), env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log
    )
    tree = Tree(process.pid)

    def tail() -> str:
        log.seek(0)
        return log.read().decode(errors="replace")[-2000:]

    try:
        deadline = time.monotonic() + max(120, records / 500)
        while count(probe, output, PARTITIONS) < records:
            if process.poll() is not None:
                raise RuntimeError(f"{variant.name} exited: {tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{variant.name} did not finish in time: {tail()}")
            tree.sample()
            time.sleep(0.2)
        time.sleep(1)  # a late duplicate would show
        tree.sample()
    finally:
        stop(process)
        log.close()
        probe.close()
    result = AvroSerde(SchemaRepository.from_directory(SCHEMAS), "BenchResult")
    outputs = read_outputs(bootstrap, output, PARTITIONS, expected, result.decode)
    if outputs.unique != records or outputs.wrong:
        raise RuntimeError(
            f"{variant.name}: {outputs.unique:,} distinct outputs of "
            f"{records:,}, wrong: {outputs.wrong}"
        )
    return outputs, tree


def latency(
    variant: Variant, bootstrap: str, rate: int, seconds: float, create: Create
) -> tuple[float, float]:
    """p50 and p99 (ms) from each event's ts to its output's append time at ``rate``/s;
    the pass's topics are made with ``create``."""
    run_id = uuid.uuid4().hex[:8]
    source, output = f"lat-in-{run_id}", f"lat-out-{run_id}"
    create([TopicSpec(source, PARTITIONS), TopicSpec(output, PARTITIONS, 1, APPEND_TIME)])
    env = {
        **os.environ,
        "BENCH_BOOTSTRAP": bootstrap,
        "STREAMKIT_BOOTSTRAP_SERVERS": bootstrap,
        "BENCH_INPUT": source,
        "BENCH_OUTPUT": output,
        "BENCH_GROUP": f"lat-{run_id}",
        "PYTHONPATH": str(ROOT),
        **variant.env,
    }
    process = subprocess.Popen(
        variant.command(env),
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    serde = AvroSerde(SchemaRepository.from_directory(SCHEMAS), "BenchEvent")
    result = AvroSerde(SchemaRepository.from_directory(SCHEMAS), "BenchResult")
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1})
    rng = random.Random(2)
    try:
        warm = time.monotonic() + 60
        probe = Consumer({"bootstrap.servers": bootstrap, "group.id": f"probe-{run_id}"})
        n = 0
        while (
            count(probe, output, PARTITIONS) == 0 and time.monotonic() < warm
        ):  # until the app answers
            producer.produce(source, serde.encode(event(n, rng)), b"warmup")
            producer.flush(5)
            n += 1
            time.sleep(0.2)
        # Paced without spinning: produce what is due, then wait in librdkafka (poll with
        # a timeout gives the core to the broker and the app) until the next record is due,
        # but at least 2 ms: waking for every record (0.2 ms apart at 5,000/s) took this
        # process to 80 % of a core, which it took from the broker and the app.
        # The first second at rate warms caches and connections; it is not measured.
        warm_ids = n + rate
        start, total, i = time.monotonic(), rate + int(rate * seconds), 0
        while i < total:
            due_now = min(total, int((time.monotonic() - start) * rate) + 1)
            while i < due_now:
                record = event(n + i, rng)
                producer.produce(source, serde.encode(record), record["user"].encode())
                i += 1
            producer.poll(max(0.002, start + i / rate - time.monotonic()))
        producer.flush(30)
        expected = n + total
        deadline = time.monotonic() + 120
        while count(probe, output, PARTITIONS) < expected and time.monotonic() < deadline:
            time.sleep(0.2)
        probe.close()
    finally:
        stop(process)
    reader = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"lat-read-{run_id}",
            "auto.offset.reset": "earliest",
        }
    )
    reader.subscribe([output])
    samples: list[int] = []
    seen = 0
    deadline = time.monotonic() + 60
    while seen < expected and time.monotonic() < deadline:
        for msg in reader.consume(1000, 0.5):
            if msg.error() is None:
                seen += 1
                out = result.decode(msg.value())
                if out["id"] >= warm_ids:
                    samples.append(msg.timestamp()[1] - out["ts"])
    reader.close()
    samples.sort()
    if not samples:
        return float("nan"), float("nan")
    return float(samples[len(samples) // 2]), float(
        samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5, help="rounds, each in a random order")
    parser.add_argument("--variants", default=",".join(v.name for v in VARIANTS))
    parser.add_argument("--seed", type=int, default=None, help="of the rounds' orders")
    parser.add_argument("--latency-rate", type=int, default=5000)
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument(
        "--latency-warmup",
        type=float,
        default=45.0,
        help="seconds of a discarded pass per implementation before latency is measured",
    )
    parser.add_argument("--latency-runs", type=int, default=3)
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    chosen = [v for v in VARIANTS if v.name in args.variants.split(",")]
    skipped = [v.name for v in chosen if not v.available()]
    chosen = [v for v in chosen if v.available()]
    for name in skipped:
        print(f"skipping {name}: its environment is not set up (make bench-peers)")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    order = random.Random(seed)
    results = {v.name: Result(v.name) for v in chosen}
    # Topics are deleted only at the end (see bench_broker): the p99 spikes of latency
    # passes fell on the deletions of earlier passes.
    with bench_broker() as (bootstrap, create, _):
        source = f"bench-in-{uuid.uuid4().hex[:8]}"
        create([TopicSpec(source, PARTITIONS)])
        # Latency first, on a quiet broker: before the dataset is written (measured right
        # after a million records landed, every client's p99 was hundreds of ms), and so
        # before the throughput runs write their million-record outputs.
        timed = [] if args.no_latency else chosen
        for variant in timed:
            # Not reported: a fresh broker's first consumer groups (creating and loading
            # __consumer_offsets) and its warm-up cost hundreds of ms of p99 to whoever
            # runs in its first minutes (measured: p99 1.8 s, then 170 ms, and
            # 20-50 ms once the broker had been up three minutes, for the same worker).
            latency(variant, bootstrap, args.latency_rate, args.latency_warmup, create)
        for i in range(args.latency_runs if timed else 0):
            for variant in order.sample(timed, len(timed)):
                p50, p99 = latency(
                    variant, bootstrap, args.latency_rate, args.latency_seconds, create
                )
                results[variant.name].latency_runs.append((p50, p99))
                print(f"{variant.name} latency pass {i + 1}: p50 {p50:.0f} ms, p99 {p99:.0f} ms")
        print(f"producing {args.records:,} records to {source} on {bootstrap}")
        expected = _produce_dataset(bootstrap, source, args.records)
        rounds = []
        for i in range(args.runs):
            rounds.append([v.name for v in order.sample(chosen, len(chosen))])
            for name in rounds[-1]:
                variant = next(v for v in chosen if v.name == name)
                outputs, tree = run_once(variant, bootstrap, source, args.records, expected, create)
                mine = results[name]
                mine.rates.append(outputs.rate)
                mine.cpu_s.append(tree.cpu_seconds)
                mine.rss_mb.append(tree.peak_rss_mb)
                mine.processes = max(mine.processes, tree.processes)
                mine.duplicates += outputs.duplicates
                mine.checked += len(expected)
                print(
                    f"{name} round {i + 1}: {outputs.rate:,.0f} records/s, "
                    f"{tree.cpu_seconds:.1f} CPU s, {tree.peak_rss_mb:.0f} MB, "
                    f"{outputs.duplicates} duplicates"
                )
        found = versions(bootstrap)
        path = report(
            [results[v.name] for v in chosen],
            {v.name: v.label for v in chosen},
            args.out,
            records=args.records,
            rate=args.latency_rate,
            seed=seed,
            rounds=rounds,
            versions=found,
            partitions=PARTITIONS,
        )
        print(path.read_text())
    return 0


if __name__ == "__main__":
    # SIGTERM, like Ctrl-C, still stops the broker and workers this run started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
