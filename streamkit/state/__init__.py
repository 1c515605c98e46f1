"""Event-sourced state: stores per partition, backed by compacted changelogs."""

from streamkit.state.aggregate import AggregateSpec, fold
from streamkit.state.dedupe import Dedupe
from streamkit.state.partition import ChangelogReader, PartitionState
from streamkit.state.stores import (
    Entry,
    MemoryStore,
    RocksDBStore,
    Store,
    StoreSpec,
    decode_entry,
    encode_entry,
    open_store,
)

__all__ = [
    "AggregateSpec",
    "ChangelogReader",
    "Dedupe",
    "Entry",
    "MemoryStore",
    "PartitionState",
    "RocksDBStore",
    "Store",
    "StoreSpec",
    "decode_entry",
    "encode_entry",
    "fold",
    "open_store",
]
