"""The restore benchmark: how fast a store is rebuilt from its changelog (a rebalance or a
restart waits on it), for the memory and the RocksDB store.

    python -m benchmarks.restore [--records 200000] [--keys 10000] [--runs 3]

A compacted changelog partition is written with ``--records`` entries over ``--keys``
keys (as an aggregate writes them: the state, the input offset, the timestamp); each run
restores it into an empty store of each kind with the worker's own restore path
(``PartitionState.restore`` through a ``ChangelogReader``) and times it. Kafka Streams
(when built: ``make bench-peers``) restores the same records into its default RocksDB
store: a table whose changelog (named as Kafka Streams names it) holds them, timed by
its own restore listener from the restore's start to its end.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

from confluent_kafka import Producer

from benchmarks._broker import bench_broker
from benchmarks.harness import ROOT
from streamkit.engines.kafka.clients import ChangelogReader
from streamkit.ops.admin import TopicSpec
from streamkit.settings import Settings
from streamkit.state.partition import PartitionState
from streamkit.state.stores import Entry, StoreSpec, encode_entry

KINDS = ("memory", "rocksdb")
KSTREAMS = ROOT / "benchmarks/kstreams/target"


def produce(bootstrap: str, topic: str, records: int, keys: int) -> int:
    """The changelog: ``records`` entries of ``keys`` keys, in partition 0; the keys used."""
    rng = random.Random(9)
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 50,
            "batch.size": 1_000_000,
            "compression.type": "lz4",
        }
    )
    used = set()
    for n in range(records):
        key = f"user-{rng.randrange(keys):07d}"
        used.add(key)
        value = encode_entry(Entry({"n": n, "sum": rng.randint(1, 10**6)}, n, 1_767_225_600_000))
        while True:
            try:
                producer.produce(topic, value, key.encode(), partition=0)
                break
            except BufferError:
                producer.poll(0.1)
    if producer.flush(120):
        raise RuntimeError("the changelog was not acknowledged in time")
    return len(used)


def kstreams_once(bootstrap: str, app_id: str, source: str) -> float:
    """Seconds Kafka Streams takes to restore ``<app_id>-s-changelog`` into its store."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "BENCH_WORKLOAD": "restore",
        "BENCH_GROUP": app_id,
        "BENCH_INPUT": source,
        "BENCH_BOOTSTRAP": bootstrap,
        "BENCH_SCHEMAS": str(ROOT / "benchmarks/schemas"),
    }
    done = subprocess.run(
        [
            "java",
            "-Xmx512m",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            "-cp",
            f"{KSTREAMS}/classes:{KSTREAMS}/lib/*",
            "bench.BenchStreams",
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    found = re.search(r"restored (\d+) records in (\d+) ms", done.stdout)
    if found is None:
        raise RuntimeError(f"Kafka Streams did not restore: {done.stderr[-2000:]}")
    return int(found.group(2)) / 1000


def restore_once(bootstrap: str, topic: str, kind: str) -> tuple[float, int]:
    """Seconds to restore ``topic`` into an empty ``kind`` store, and the keys it holds."""
    directory = Path(tempfile.mkdtemp(prefix="bench-restore-"))
    settings = Settings.from_env({"STREAMKIT_BOOTSTRAP_SERVERS": bootstrap})
    reader = ChangelogReader(settings, SimpleNamespace(restore_group=f"restore-{uuid.uuid4().hex}"))  # type: ignore[arg-type]
    state = PartitionState(0, [StoreSpec("s", "in", topic, kind)], directory)
    try:
        began = time.monotonic()
        state.restore(reader)
        seconds = time.monotonic() - began
        return seconds, sum(1 for _ in state.items("s"))
    finally:
        state.close()
        reader.close()
        shutil.rmtree(directory, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    rates: dict[str, list[float]] = {kind: [] for kind in KINDS}
    with bench_broker() as (bootstrap, create, _):
        topic = f"bench-restore-{uuid.uuid4().hex[:8]}"
        create([TopicSpec(topic, 1, 1, {"cleanup.policy": "compact"})])
        used = produce(bootstrap, topic, args.records, args.keys)
        kinds = list(KINDS)
        app_id = f"bench-restore-ks-{uuid.uuid4().hex[:8]}"
        if (KSTREAMS / "classes").exists():  # the same records, where Kafka Streams looks
            changelog, source = f"{app_id}-s-changelog", f"{app_id}-src"
            create(
                [TopicSpec(changelog, 1, 1, {"cleanup.policy": "compact"}), TopicSpec(source, 1)]
            )
            produce(bootstrap, changelog, args.records, args.keys)
            kinds.append("kstreams")
            rates["kstreams"] = []
        for i in range(args.runs):
            for kind in random.Random(i).sample(kinds, len(kinds)):
                if kind == "kstreams":
                    seconds = kstreams_once(bootstrap, app_id, f"{app_id}-src")
                    rates[kind].append(args.records / seconds)
                    print(f"kstreams run {i + 1}: {args.records / seconds:,.0f} records/s")
                    continue
                seconds, keys = restore_once(bootstrap, topic, kind)
                if keys != used:
                    raise RuntimeError(f"{kind}: {keys:,} keys restored, {used:,} written")
                rates[kind].append(args.records / seconds)
                print(
                    f"{kind} run {i + 1}: {args.records / seconds:,.0f} records/s ({keys:,} keys)",
                    flush=True,
                )
    lines = [
        "# Restore",
        "",
        f"A changelog partition of {args.records:,} entries over {args.keys:,} keys restored "
        "into an empty store by the worker's restore path (`python -m benchmarks.restore`).",
        "",
        "| store | records/s median (min-max) |",
        "| --- | ---: |",
    ]
    for kind, values in rates.items():
        ordered = sorted(values)
        label = {"kstreams": "Kafka Streams (RocksDB)"}.get(kind, f"streamkit, {kind}")
        lines.append(
            f"| {label} | {ordered[(len(ordered) - 1) // 2]:,.0f} "
            f"({ordered[0]:,.0f}-{ordered[-1]:,.0f}) |"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "restore.md"
    path.write_text("\n".join(lines) + "\n")
    print(path.read_text())
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
