"""`make demo`: the orders pipeline on a real broker, with a summary.

Creates the app's topics, starts ``streamkit run processors.orders --workers 2``, produces
generated OrderPlaced events (Avro, single-object encoding), waits until the group has
processed and committed all of them, stops the workers with SIGTERM and prints what went
where. Uses ``STREAMKIT_BOOTSTRAP_SERVERS`` (the Makefile starts a local broker for it).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from processors.generator import orders
from processors.orders import PLACED, VALIDATED, app
from streamkit.ops.admin import TopicSpec, admin_client, create_topics, describe_topics
from streamkit.runtime.pipeline import Pipeline
from streamkit.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def _high_watermarks(consumer: Consumer, topic: str, partitions: int) -> dict[int, int]:
    return {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
        for p in range(partitions)
    }


def _totals(consumer: Consumer) -> dict[str, int]:
    return {
        name: sum(_high_watermarks(consumer, name, topic.partitions).values())
        for name, topic in app.topics.items()
    }


def _caught_up(consumer: Consumer) -> bool:
    for topic in (PLACED, VALIDATED):
        highs = _high_watermarks(consumer, topic.name, topic.partitions)
        parts = [TopicPartition(topic.name, p) for p in range(topic.partitions)]
        committed = {tp.partition: tp.offset for tp in consumer.committed(parts, timeout=10)}
        if any(committed[p] < high for p, high in highs.items() if high > 0):
            return False
    return True


def _assigned(admin: AdminClient) -> int:
    """Partitions assigned to the app's group right now."""
    (future,) = admin.describe_consumer_groups([app.group_id], request_timeout=10).values()
    try:
        group = future.result(timeout=15)
    except KafkaException:
        return 0
    return sum(len(m.assignment.topic_partitions) for m in group.members)


def main() -> int:
    """Run the demo; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    settings = Settings.from_env()
    print(f"streamkit demo on {settings.bootstrap_servers}")

    admin = admin_client(settings.client_config())
    existing = describe_topics(admin)
    specs = [
        TopicSpec(t.name, t.partitions, t.replication_factor, t.config)
        for t in app.all_topics().values()
        if t.name not in existing
    ]
    create_topics(admin, specs)
    watcher = Consumer(settings.client_config(**{"group.id": app.group_id}))
    before = _totals(watcher)

    workers = subprocess.Popen(
        [sys.executable, "-m", "streamkit", "run", "processors.orders",
         "--workers", str(args.workers), "--log-level", "warning"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    try:
        ready_by = time.monotonic() + args.timeout
        while _assigned(admin) < PLACED.partitions + VALIDATED.partitions:
            if workers.poll() is not None or time.monotonic() > ready_by:
                print("error: the workers did not join the group", file=sys.stderr)
                return 1
            time.sleep(0.2)
        serde = Pipeline(app, settings).serdes[PLACED.name]
        producer = Producer(settings.client_config(**{"linger.ms": 10, "acks": "all"}))
        started = time.monotonic()
        for order in orders(args.events, seed=int(time.time())):
            producer.produce(
                PLACED.name, serde.value.encode(order), serde.key.encode(order["customer_id"])
            )
        if producer.flush(30):
            print("error: the generated events were not acknowledged", file=sys.stderr)
            return 1
        print(f"produced {args.events} OrderPlaced events; {args.workers} workers processing...")
        deadline = time.monotonic() + args.timeout
        while not _caught_up(watcher):
            if workers.poll() is not None:
                print(f"error: the workers exited with {workers.returncode}", file=sys.stderr)
                return 1
            if time.monotonic() > deadline:
                print(f"error: not caught up after {args.timeout:.0f}s", file=sys.stderr)
                return 1
            time.sleep(0.2)
        elapsed = time.monotonic() - started
        after = _totals(watcher)
    finally:
        if workers.poll() is None:
            workers.send_signal(signal.SIGTERM)
            workers.wait(timeout=60)
        watcher.close()

    print()
    print(f"{'topic':<20}{'records':>10}")
    for name in app.topics:
        print(f"{name:<20}{after[name] - before[name]:>10}")
    print()
    print(
        f"{args.events} events through validate → fulfil / large_orders, processed and "
        f"committed in {elapsed:.2f}s ({args.events / elapsed:,.0f} events/s end to end, "
        f"including the 1 s commit interval); "
        f"workers stopped with exit code {workers.returncode}"
    )
    return 0 if workers.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
