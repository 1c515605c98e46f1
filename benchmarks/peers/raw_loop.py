"""(a) A hand-written confluent-kafka loop: the ceiling for what Python can do.

At least once, like the others: fastavro with parsed schemas, produce with delivery
reports served once per batch, offsets stored only after every record of a batch is
acknowledged and committed by auto-commit every second (streamkit's interval). It gets
what streamkit's worker gets and nothing else costs it: the same fetch settings
(``streamkit.engines.kafka.clients.FETCH``), the same producer settings (idempotent,
``acks=all``, 5 ms linger, lz4) and the same batch loop (take what is queued, up to 500
records; wait for a first record only when nothing is). Env: BENCH_BOOTSTRAP, BENCH_INPUT,
BENCH_OUTPUT, BENCH_GROUP.
"""

from __future__ import annotations

import os
import signal
from io import BytesIO

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form

from benchmarks.peers.work import SCHEMAS, transform
from streamkit.engines.kafka.clients import FETCH

BATCH = 500


def _schema(name: str) -> tuple[object, bytes]:
    parsed = parse_schema(orjson.loads((SCHEMAS / f"{name}.avsc").read_bytes()))
    crc = bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))  # LE
    return parsed, b"\xc3\x01" + crc


def main() -> None:
    reader, _ = _schema("BenchEvent")
    writer, header = _schema("BenchResult")
    bootstrap = os.environ["BENCH_BOOTSTRAP"]
    output = os.environ["BENCH_OUTPUT"]
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": os.environ["BENCH_GROUP"],
            "auto.offset.reset": "earliest",
            "enable.auto.offset.store": False,
            "auto.commit.interval.ms": 1000,
            "partition.assignment.strategy": "cooperative-sticky",
            **FETCH,
        }
    )
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
        }
    )
    running = True

    def stop(*_: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    consumer.subscribe([os.environ["BENCH_INPUT"]])
    pending: list[tuple[list[int], dict[tuple[str, int], int]]] = []
    while running:
        batch = consumer.consume(BATCH, 0)
        if not batch:
            first = consumer.poll(0.2)
            batch = [] if first is None else [first, *consumer.consume(BATCH - 1, 0)]
        if batch:
            count = [0]
            offsets: dict[tuple[str, int], int] = {}

            def acked(err: object, msg: object, count: list[int] = count) -> None:
                count[0] -= 1

            for msg in batch:
                if msg.error() is not None:
                    continue
                value = msg.value()
                stream = BytesIO(value)
                stream.seek(10)
                out = BytesIO()
                out.write(header)
                schemaless_writer(out, writer, transform(schemaless_reader(stream, reader, None)))
                count[0] += 1
                while True:
                    try:
                        producer.produce(output, out.getvalue(), msg.key(), on_delivery=acked)
                        break
                    except BufferError:
                        producer.poll(0.05)
                offsets[(msg.topic(), msg.partition())] = msg.offset() + 1
            pending.append((count, offsets))
        producer.poll(0)
        while pending and pending[0][0][0] == 0:
            _, done = pending.pop(0)
            consumer.store_offsets(offsets=[TopicPartition(t, p, o) for (t, p), o in done.items()])
    producer.flush(30)
    consumer.close()


if __name__ == "__main__":
    main()
