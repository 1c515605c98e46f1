"""State stores: one per (store, partition), in memory or in RocksDB.

A store maps a state key to an :class:`Entry`: the state, the input offset that last
changed it (so a redelivered record is not folded twice) and when (for TTL). The
changelog topic holds the same entries; a store is rebuilt from it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson

from streamkit.errors import ConfigError

__all__ = [
    "Entry",
    "MemoryStore",
    "RocksDBStore",
    "Store",
    "StoreSpec",
    "decode_entry",
    "encode_entry",
    "open_store",
    "state_key",
]

STORE_KINDS = frozenset({"memory", "rocksdb"})


@dataclass(frozen=True)
class StoreSpec:
    """A store of an app, as the runtime opens it for each partition of its source.

    Attributes:
        name: the store's name (unique in the app).
        source: the input topic it is partitioned like (partition p of the store holds the
            keys of partition p of ``source``).
        changelog: its compacted changelog topic.
        kind: ``memory`` or ``rocksdb``.
        ttl: seconds after which an entry without updates expires (None: never).
    """

    name: str
    source: str
    changelog: str
    kind: str = "memory"
    ttl: float | None = None

    def expired(self, entry: Entry, now_ms: int) -> bool:
        """Whether ``entry`` outlived the store's TTL at ``now_ms``."""
        return self.ttl is not None and entry.timestamp + self.ttl * 1000 < now_ms


@dataclass(frozen=True, slots=True)
class Entry:
    """A key's state, the input offset that produced it, and its timestamp (ms).

    ``sources``: for a state fed through a repartition topic, the highest offset folded
    of each source partition (``topic/partition``), so that records the router wrote
    twice (at least once, after a crash) are folded once.
    """

    state: Any
    offset: int
    timestamp: int
    sources: dict[str, int] | None = None


def encode_entry(entry: Entry) -> bytes:
    """The changelog value of an entry (JSON: state, offset, timestamp, sources)."""
    doc = {"s": entry.state, "o": entry.offset, "t": entry.timestamp}
    if entry.sources:
        doc["r"] = entry.sources
    return orjson.dumps(doc)


def decode_entry(raw: bytes) -> Entry:
    """An entry from its changelog value."""
    doc = orjson.loads(raw)
    return Entry(doc["s"], int(doc.get("o", -1)), int(doc.get("t", 0)), doc.get("r"))


class Store(Protocol):
    """What the runtime needs of a store."""

    def get(self, key: str) -> Entry | None:
        """The entry of ``key``, if any."""
        ...

    def put(self, key: str, entry: Entry, raw: bytes | None = None) -> None:
        """Set the entry of ``key`` (``raw``: the entry encoded, when it is already)."""
        ...

    def put_encoded(self, key: str, raw: bytes) -> None:
        """Set the entry of ``key`` from its changelog value (a restore)."""
        ...

    def delete(self, key: str) -> None:
        """Forget ``key``."""
        ...

    def checkpoint(self) -> int:
        """The next changelog offset to restore from (0: restore everything)."""
        ...

    def set_checkpoint(self, offset: int) -> None:
        """Everything before changelog ``offset`` is in this store."""
        ...

    def __len__(self) -> int: ...

    def items(self) -> Iterator[tuple[str, Entry]]:
        """Every key and its entry (in key order for RocksDB, insertion order in memory)."""
        ...

    def close(self) -> None:
        """Release resources."""
        ...


class MemoryStore:
    """A dict; restored from the beginning of the changelog on every assignment (entries
    restored are decoded when first read)."""

    def __init__(self) -> None:
        self._data: dict[str, Entry] = {}
        self._raw: dict[str, bytes] = {}

    def get(self, key: str) -> Entry | None:
        entry = self._data.get(key)
        if entry is None and self._raw:
            raw = self._raw.pop(key, None)
            if raw is not None:
                entry = self._data[key] = decode_entry(raw)
        return entry

    def put(self, key: str, entry: Entry, raw: bytes | None = None) -> None:
        self._data[key] = entry
        if self._raw:
            self._raw.pop(key, None)

    def put_encoded(self, key: str, raw: bytes) -> None:
        self._raw[key] = raw
        self._data.pop(key, None)

    def delete(self, key: str) -> None:
        self._data.pop(key, None)
        self._raw.pop(key, None)

    def checkpoint(self) -> int:
        return 0

    def set_checkpoint(self, offset: int) -> None:
        return

    def __len__(self) -> int:
        return len(self._data) + len(self._raw)

    def items(self) -> Iterator[tuple[str, Entry]]:
        for key in list(self._raw):
            self.get(key)
        return iter(list(self._data.items()))

    def close(self) -> None:
        self._data.clear()
        self._raw.clear()


_ROCKSDB_MEMORY_MB = [64]
_ROCKSDB_SHARED: list[Any] = []


def configure_rocksdb(memory_mb: int) -> None:
    """What every RocksDB store of this process may hold in memory, together (set before
    the first store opens; see :class:`RocksDBStore`)."""
    _ROCKSDB_MEMORY_MB[0] = memory_mb


def _rocksdb_options() -> Any:
    """Options of a RocksDB store: one block cache for every store of the process, of the
    configured size, with every store's write buffers charged to it (RocksDB's "write
    buffer manager"), so that the stores of a worker hold that much whatever their number
    and key count; small write buffers (4 MB, two per store) and index and filter blocks
    in the cache too."""
    from rocksdict import (  # noqa: PLC0415 - optional extra
        BlockBasedOptions,
        Cache,
        Options,
        WriteBufferManager,
    )

    budget = _ROCKSDB_MEMORY_MB[0] << 20
    if not _ROCKSDB_SHARED:
        cache = Cache(budget)
        manager = WriteBufferManager.new_write_buffer_manager_with_cache(budget // 2, False, cache)
        _ROCKSDB_SHARED.extend([cache, manager])
    cache, manager = _ROCKSDB_SHARED
    table = BlockBasedOptions()
    table.set_block_cache(cache)
    table.set_cache_index_and_filter_blocks(True)
    table.set_pin_l0_filter_and_index_blocks_in_cache(True)
    options = Options()
    options.create_if_missing(True)
    options.set_block_based_table_factory(table)
    options.set_write_buffer_manager(manager)
    options.set_write_buffer_size(4 << 20)
    options.set_max_write_buffer_number(2)
    return options


_CHECKPOINT = b"\x00streamkit.checkpoint"
_CHECKPOINT_EVERY = 1000


class RocksDBStore:
    """RocksDB through rocksdict, with the changelog offset it holds (a restart restores
    only the changelog's tail).

    Writes skip RocksDB's write-ahead log, as Kafka Streams' stores do: the changelog is
    the store's log. After a crash the store is what its last memtable flush held, a
    prefix of its writes in which the checkpoint never runs ahead of the data (a
    checkpoint is written after the changelog record of every change before it was
    acknowledged), so the restore replays the changelog from there. The entries last read
    or written (up to ``cached``) are kept decoded in memory too: a hot key is not read
    back and decoded on each record. Memory is bounded per process, not per store (see
    :func:`configure_rocksdb`, ``STREAMKIT_ROCKSDB_MEMORY_MB``).
    """

    def __init__(self, path: Path, cached: int = 5_000) -> None:
        try:
            from rocksdict import Rdict, WriteOptions  # noqa: PLC0415 - optional extra
        except ImportError as exc:
            raise ConfigError("RocksDB stores need: pip install 'streamkit[rocksdb]'") from exc
        path.mkdir(parents=True, exist_ok=True)
        self._db: Any = Rdict(str(path), options=_rocksdb_options())
        unlogged = WriteOptions()
        # An attribute at run time; rocksdict's stub calls it a method.
        unlogged.disable_wal = True  # type: ignore[method-assign,assignment]
        self._db.set_write_options(unlogged)
        raw = self._db.get(_CHECKPOINT)
        self._checkpoint = self._written = 0 if raw is None else int(raw)
        self._cache: dict[str, Entry] = {}
        self._cached = cached

    def get(self, key: str) -> Entry | None:
        entry = self._cache.get(key)
        if entry is None:
            raw = self._db.get(key.encode())
            if raw is None:
                return None
            entry = decode_entry(raw)
            self._keep(key, entry)
        return entry

    def put(self, key: str, entry: Entry, raw: bytes | None = None) -> None:
        self._db[key.encode()] = encode_entry(entry) if raw is None else raw
        self._keep(key, entry)

    def put_encoded(self, key: str, raw: bytes) -> None:
        self._db[key.encode()] = raw  # as the changelog has it: not decoded until read
        self._cache.pop(key, None)

    def delete(self, key: str) -> None:
        self._db.delete(key.encode())
        self._cache.pop(key, None)

    def _keep(self, key: str, entry: Entry) -> None:
        cache = self._cache
        if len(cache) >= self._cached and key not in cache:
            del cache[next(iter(cache))]  # the longest kept
        cache[key] = entry

    def checkpoint(self) -> int:
        return self._checkpoint

    def set_checkpoint(self, offset: int) -> None:
        """Keep ``offset``; written to the store every ``_CHECKPOINT_EVERY`` offsets and on
        close (an older checkpoint only makes a restore replay a little more)."""
        if offset - self._written >= _CHECKPOINT_EVERY or offset < self._written:
            self._db[_CHECKPOINT] = str(offset).encode()
            self._written = offset
        self._checkpoint = offset

    def __len__(self) -> int:
        # Rdict iterates like a list (by index); keys() walks the keys.
        return sum(1 for key in self._db.keys() if key != _CHECKPOINT)  # noqa: SIM118

    def items(self) -> Iterator[tuple[str, Entry]]:
        for key, raw in self._db.items():
            if key != _CHECKPOINT:
                yield key.decode(), decode_entry(raw)

    def close(self) -> None:
        if self._checkpoint != self._written:
            self._db[_CHECKPOINT] = str(self._checkpoint).encode()
        self._db.flush()  # the memtable: with no write-ahead log, close must not lose it
        self._db.close()


def state_key(key: str | Callable[[Any], Any] | None, event: Any, record_key: Any) -> str | None:
    """The state key of ``event`` by a declared ``key``: an event field's name, a function
    of the event, or None for the record key (None when the event has none)."""
    if key is None:
        value = record_key
    elif callable(key):
        value = key(event)
    else:
        value = event.get(key) if isinstance(event, dict) else None
    return None if value is None else str(value)


def open_store(kind: str, path: Path) -> Store:
    """A ``memory`` or ``rocksdb`` store (``path`` is used by RocksDB only)."""
    if kind == "memory":
        return MemoryStore()
    if kind == "rocksdb":
        return RocksDBStore(path)
    raise ConfigError(f"unknown store kind {kind!r} (memory or rocksdb)")


def validate_kind(kind: str) -> str:
    """Refuse an unknown store kind at declaration."""
    if kind not in STORE_KINDS:
        raise ConfigError(f"store kind {kind!r}: expected memory or rocksdb")
    return kind
