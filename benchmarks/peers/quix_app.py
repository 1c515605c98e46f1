"""(e) The same work in Quix Streams (run in its own virtualenv), idiomatically: a
StreamingDataFrame with Avro (de)serializers for the single-object format, at least once.
Settings and where they come from: its defaults (an idempotent producer, its consumer
fetch tuning, ``_default_consumer_extra_config`` in ``quixstreams/app.py``) plus
``commit_interval=1.0`` (every implementation commits every second; its default is 5 s)
and the producer's 5 ms linger and lz4 that every implementation gets.
Env: BENCH_BOOTSTRAP, BENCH_INPUT, BENCH_OUTPUT, BENCH_GROUP.
"""

from __future__ import annotations

import os
from io import BytesIO
from typing import Any

import orjson
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form
from quixstreams import Application
from quixstreams.models import Deserializer, Serializer

from benchmarks.peers.work import SCHEMAS, transform


def _schema(name: str) -> tuple[Any, bytes]:
    parsed = parse_schema(orjson.loads((SCHEMAS / f"{name}.avsc").read_bytes()))
    crc = bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))  # LE
    return parsed, b"\xc3\x01" + crc


class SingleObjectDeserializer(Deserializer):
    def __init__(self) -> None:
        super().__init__()
        self.schema, _ = _schema("BenchEvent")

    def __call__(self, value: bytes, ctx: Any) -> Any:
        data = BytesIO(value)
        data.seek(10)
        return schemaless_reader(data, self.schema, None)


class SingleObjectSerializer(Serializer):
    def __init__(self) -> None:
        super().__init__()
        self.schema, self.header = _schema("BenchResult")

    def __call__(self, value: Any, ctx: Any) -> bytes:
        out = BytesIO()
        out.write(self.header)
        schemaless_writer(out, self.schema, value)
        return out.getvalue()


def main() -> None:
    app = Application(
        broker_address=os.environ["BENCH_BOOTSTRAP"],
        consumer_group=os.environ["BENCH_GROUP"],
        auto_offset_reset="earliest",
        processing_guarantee="at-least-once",
        commit_interval=1.0,
        auto_create_topics=False,
        producer_extra_config={"linger.ms": 5, "compression.type": "lz4"},
    )
    source = app.topic(
        os.environ["BENCH_INPUT"],
        key_deserializer="bytes",
        value_deserializer=SingleObjectDeserializer(),
    )
    sink = app.topic(
        os.environ["BENCH_OUTPUT"],
        key_serializer="bytes",
        value_serializer=SingleObjectSerializer(),
    )
    app.dataframe(source).apply(transform).to_topic(sink)
    app.run()


if __name__ == "__main__":
    main()
