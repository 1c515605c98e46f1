"""(w-e) The windowed count in Quix Streams, as its docs show it: a StreamingDataFrame's
``tumbling_window(...).count().final(closing_strategy="partition")`` over the record
timestamp, no grace (its default RocksDB state, with a changelog it creates), at least
once. The closing strategy: by default ``final()`` closes a window only when its own key
sends again ("windows can be closed only within the same message key", its docstring),
so a key's last windows never close; "partition" closes every key's windows as the
partition's stream time passes them, the semantics of Kafka Streams and streamkit. Env: BENCH_BOOTSTRAP,
BENCH_INPUT, BENCH_OUTPUT, BENCH_GROUP.
"""

from __future__ import annotations

import os
from datetime import timedelta

from quixstreams import Application

from benchmarks.peers.quix_app import SingleObjectDeserializer


def main() -> None:
    app = Application(
        broker_address=os.environ["BENCH_BOOTSTRAP"],
        consumer_group=os.environ["BENCH_GROUP"],
        auto_offset_reset="earliest",
        processing_guarantee="at-least-once",
        auto_create_topics=True,  # its changelog topic (the dataset's topics exist)
        state_dir=os.environ.get("BENCH_STATE_DIR", "state"),
        producer_extra_config={"linger.ms": 5, "compression.type": "lz4"},
    )
    source = app.topic(
        os.environ["BENCH_INPUT"],
        key_deserializer="bytes",
        value_deserializer=SingleObjectDeserializer(),
    )
    sink = app.topic(os.environ["BENCH_OUTPUT"], key_serializer="bytes", value_serializer="json")
    (
        app.dataframe(source)
        .tumbling_window(duration_ms=timedelta(minutes=1), grace_ms=0)
        .count()
        .final(closing_strategy="partition")
        .to_topic(sink)
    )
    app.run()


if __name__ == "__main__":
    main()
