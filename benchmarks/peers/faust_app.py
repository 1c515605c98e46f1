"""(d) The same work as a faust-streaming agent (run in its own virtualenv).

Written as faust's docs recommend for throughput: raw bytes on the topics with the Avro
work in the agent, events iterated with their keys, outputs sent with the same key,
acks after processing (faust's at-least-once). Installed with its ``[fast,uvloop]``
extras and run on uvloop (``-L uvloop``, the harness). Settings and where they come from:

- ``stream_buffer_maxsize=131072``: its settings reference, "A buffer size of 131_072 may
  let you process over 30,000 events a second as a baseline".
- ``broker_commit_interval=1.0``: every implementation commits every second (its default
  is 2.8 s).
- ``producer_acks=-1`` (its default, written out): every implementation waits for all
  replicas. Its producer is not idempotent: faust turns idempotence on only with
  ``processing_guarantee="exactly_once"``, so here it does a little less work than the
  others.

Env: BENCH_BOOTSTRAP, BENCH_INPUT, BENCH_OUTPUT, BENCH_GROUP, BENCH_PARTITIONS.
"""

from __future__ import annotations

import os
from io import BytesIO

import faust
import orjson
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form

from benchmarks.peers.work import SCHEMAS, transform


def _schema(name: str) -> tuple[object, bytes]:
    parsed = parse_schema(orjson.loads((SCHEMAS / f"{name}.avsc").read_bytes()))
    crc = bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))  # LE
    return parsed, b"\xc3\x01" + crc


READER, _ = _schema("BenchEvent")
WRITER, HEADER = _schema("BenchResult")
PARTITIONS = int(os.environ.get("BENCH_PARTITIONS", "8"))

app = faust.App(
    os.environ.get("BENCH_GROUP", "bench-faust"),
    broker=f"kafka://{os.environ.get('BENCH_BOOTSTRAP', '127.0.0.1:9092')}",
    topic_partitions=PARTITIONS,
    topic_allow_declare=False,
    consumer_auto_offset_reset="earliest",
    producer_linger=0.005,
    producer_compression_type="lz4",
    stream_buffer_maxsize=131_072,
    broker_commit_interval=1.0,
    producer_acks=-1,
    web_enabled=False,
    store="memory://",
)
source = app.topic(
    os.environ.get("BENCH_INPUT", "bench-in"),
    key_type=bytes,
    value_type=bytes,
    value_serializer="raw",
    key_serializer="raw",
    partitions=PARTITIONS,
)
sink = app.topic(
    os.environ.get("BENCH_OUTPUT", "bench-out"),
    key_type=bytes,
    value_type=bytes,
    value_serializer="raw",
    key_serializer="raw",
    partitions=PARTITIONS,
)


@app.agent(source)
async def bench(stream: faust.Stream) -> None:
    """Decode, map, encode, send with the same key."""
    async for event in stream.events():
        data = BytesIO(event.value)
        data.seek(10)
        out = BytesIO()
        out.write(HEADER)
        schemaless_writer(out, WRITER, transform(schemaless_reader(data, READER, None)))
        await sink.send(key=event.key, value=out.getvalue())


if __name__ == "__main__":
    app.main()
