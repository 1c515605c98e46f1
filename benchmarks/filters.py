"""The filter benchmark: what a declarative header filter saves ("fewer unnecessary
invocations").

    python -m benchmarks.filters [--records 1000000] [--runs 3]

The dataset: ``--records`` BenchEvents (the main benchmark's ~200-byte Avro records) spread
round-robin over the partitions, 1% of them with the header ``type: wanted`` (every 100th,
and the first and the last of each partition), the others ``type: other``. One streamkit worker maps the wanted ones (``benchmarks/peers/
streamkit_filter.py``), the filter written two ways: ``where_headers={"type": ["wanted"]}``
(records that miss it are never decoded) and the same test in the function (every record
decoded, the function called, None returned). A run is done when the output holds one
record per wanted input; its rate is every input record over the time between the first and
the last output's append (every partition's first and last records are wanted, so that
span covers all the work). Runs go round-robin;
the medians and their ratio are reported.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import tempfile
import uuid
from pathlib import Path

from confluent_kafka import Producer

from benchmarks._broker import Create, bench_broker, run_until_written
from benchmarks.harness import PARTITIONS, ROOT
from benchmarks.peers.work import SCHEMAS, event
from streamkit.contracts import AvroSerde, SchemaRepository
from streamkit.ops.admin import TopicSpec

APPEND_TIME = {"message.timestamp.type": "LogAppendTime"}
VARIANTS = {
    "headers": "`where_headers=` (before decoding)",
    "function": "the same test in the function",
}


def produce(bootstrap: str, topic: str, records: int) -> int:
    """The dataset; returns how many records are wanted."""
    serde = AvroSerde(SchemaRepository.from_directory(SCHEMAS), "BenchEvent")
    rng = random.Random(1)
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 50, "compression.type": "lz4"}
    )
    wanted = 0
    for n in range(records):
        record = event(n, rng)
        edge = n < PARTITIONS or n >= records - PARTITIONS
        kind = b"wanted" if n % 100 == 0 or edge else b"other"
        wanted += kind == b"wanted"
        while True:
            try:
                producer.produce(
                    topic,
                    serde.encode(record),
                    record["user"].encode(),
                    partition=n % PARTITIONS,
                    headers=[("type", kind)],
                )
                break
            except BufferError:
                producer.poll(0.1)
    if producer.flush(120):
        raise RuntimeError("the dataset was not acknowledged in time")
    return wanted


def run_once(
    variant: str, bootstrap: str, source: str, records: int, wanted: int, create: Create
) -> float:
    """One run: input records/s between the first and the last output."""
    run_id = uuid.uuid4().hex[:8]
    output = f"bench-filter-out-{run_id}"
    create([TopicSpec(output, PARTITIONS, 1, APPEND_TIME)])
    env = {
        **os.environ,
        "STREAMKIT_BOOTSTRAP_SERVERS": bootstrap,
        "BENCH_INPUT": source,
        "BENCH_OUTPUT": output,
        "BENCH_GROUP": f"bench-filter-{run_id}",
        "BENCH_FILTER": variant,
        "PYTHONPATH": str(ROOT),
        "STREAMKIT_STATE_DIR": tempfile.mkdtemp(prefix="bench-filter-"),
    }
    command = [sys.executable, "-m", "streamkit", "run", "benchmarks.peers.streamkit_filter"]
    run = run_until_written(
        variant, command, env, bootstrap, output, wanted, timeout=max(300, records / 2000)
    )
    return run.rate(records)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    with bench_broker() as (bootstrap, create, _):
        source = f"bench-filter-in-{uuid.uuid4().hex[:8]}"
        create([TopicSpec(source, PARTITIONS)])
        print(f"producing {args.records:,} records, 1% wanted")
        wanted = produce(bootstrap, source, args.records)
        runs: dict[str, list[float]] = {v: [] for v in VARIANTS}
        for i in range(args.runs):
            for variant in VARIANTS:
                rate = run_once(variant, bootstrap, source, args.records, wanted, create)
                runs[variant].append(rate)
                print(f"{variant} run {i + 1}: {rate:,.0f} records/s", flush=True)
        print(report(runs, args).read_text())
    return 0


def report(runs: dict[str, list[float]], args: argparse.Namespace) -> Path:
    """filters.md in ``args.out``: each median and its ratio to the filter in the function."""
    medians = {v: sorted(rs)[len(rs) // 2] for v, rs in runs.items()}
    lines = [
        "# A 1%-selective filter",
        "",
        f"{args.records:,} BenchEvents, 1% with the header `type: wanted`, {PARTITIONS} "
        f"partitions, 1 worker; median of {args.runs} runs taken round-robin on one broker "
        "(`python -m benchmarks.filters`; how the rate is taken: its module docstring; the "
        "app: `benchmarks/peers/streamkit_filter.py`).",
        "",
        "| the filter | input records/s | vs in the function |",
        "| --- | ---: | ---: |",
    ]
    for variant, label in VARIANTS.items():
        ratio = medians[variant] / medians["function"]
        lines.append(f"| {label} | {medians[variant]:,.0f} | {ratio:.2f}x |")
    lines += ["", "Every run (records/s):", ""]
    lines += [f"- {v}: " + ", ".join(f"{r:,.0f}" for r in rs) for v, rs in runs.items()]
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "filters.md"
    path.write_text("\n".join(lines) + "\n")
    return path


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
