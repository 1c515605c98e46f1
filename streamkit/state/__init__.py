"""Event-sourced state: aggregates folded into stores backed by compacted changelogs."""

from streamkit.state.aggregate import AggregateSpec, changelog_topic
from streamkit.state.manager import StateManager
from streamkit.state.stores import Entry, MemoryStore, RocksDBStore, Store, open_store

__all__ = [
    "AggregateSpec",
    "Entry",
    "MemoryStore",
    "RocksDBStore",
    "StateManager",
    "Store",
    "changelog_topic",
    "open_store",
]
