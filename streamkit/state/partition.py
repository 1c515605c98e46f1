"""The state of one input partition: its stores, restored from their changelogs.

Partition p of a store holds the keys of partition p of the store's source topic, and its
changelog partition p holds the same entries. A worker opens a partition's stores when
the partition is assigned, restores them before processing it, and closes them when the
partition goes: there is no state of a partition anywhere else.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from streamkit.state.stores import (
    Entry,
    Store,
    StoreSpec,
    encode_entry,
    open_store,
)

__all__ = ["ACKED", "ChangelogReader", "PartitionState", "restore_progress"]

log = logging.getLogger("streamkit.state")

ACKED = "\x00acked-through"
"""The key, in a store whose changes time held back, of the input offset through which
every record's outputs were acknowledged when they were let go (see
:meth:`PartitionState.acked_through`)."""

ChangelogReader = Callable[
    [str, int, int], tuple[int, Iterable[tuple[bytes | None, bytes | None, int]]]
]
"""``read(changelog, partition, start)``: the changelog partition's end offset, and its
records ``(key, value, offset)`` from ``start`` to that end."""


class PartitionState:
    """The stores of one partition, with a journal that rolls back an aborted transaction.

    A record is folded at most once per store: each entry remembers the input offset that
    produced it, so a redelivered record (after a crash or a rebalance) re-emits the
    current state instead of folding again, and state rebuilt from the changelog equals a
    fold of the input.
    """

    def __init__(self, partition: int, specs: Sequence[StoreSpec], directory: Path) -> None:
        self.partition = partition
        self.specs = {spec.name: spec for spec in specs}
        self._stores: dict[str, Store] = {
            spec.name: open_store(spec.kind, directory / spec.name / str(partition))
            for spec in specs
        }
        self._by_changelog = {spec.changelog: spec.name for spec in specs}
        self._journal: list[tuple[Store, str, Entry | None]] | None = None
        self._changes: list[tuple[str, str, Entry | None, bytes | None]] = []
        self._released: list[tuple[str, str]] = []
        self.on_rollback: list[Callable[[], None]] = []
        """Called after a rollback (what keeps an index of a store rebuilds it)."""
        self.views: dict[str, object] = {}
        """Indexes over the stores, by store name (windows, timers), kept by their users."""
        self.restored_records = 0

    # -- reads and writes -----------------------------------------------------------------
    def get(self, store: str, key: str, now_ms: int) -> Entry | None:
        """The live entry of ``key`` in ``store`` (None: none, or expired at ``now_ms``)."""
        entry = self._stores[store].get(key)
        if entry is not None and self.specs[store].expired(entry, now_ms):
            return None
        return entry

    def put(self, store: str, key: str, entry: Entry | None, raw: bytes | None = None) -> None:
        """Set (or with None delete) ``key`` in ``store``, journaled inside a transaction;
        the change waits in :meth:`changes` for its changelog record (``raw``: the entry
        encoded already)."""
        local = self._stores[store]
        if self._journal is not None:
            self._journal.append((local, key, local.get(key)))
        if entry is None:
            local.delete(key)
        else:  # encoded once, for the store and the changelog, as the entry is now
            raw = raw or encode_entry(entry)
            local.put(key, entry, raw)
        self._changes.append((store, key, entry, raw))

    def items(self, store: str) -> Iterator[tuple[str, Entry]]:
        """Every key of ``store`` with its entry (not :data:`ACKED`, the store's mark)."""
        return (item for item in self._stores[store].items() if item[0] != ACKED)

    def changes(self) -> list[tuple[str, bytes, bytes | None]]:
        """The changelog records of the changes since the last call, and of the keys
        :meth:`release` let go since: (changelog topic, key, value; None deletes). The
        runtime writes them with the records they came from, to partition
        :attr:`partition` of each changelog."""
        drained, self._changes = self._changes, []
        released, self._released = self._released, []
        for store, key in dict.fromkeys(released):  # as they are now
            entry = self._stores[store].get(key)
            drained.append((store, key, entry, None))
        return [
            (
                self.specs[store].changelog,
                key.encode(),
                None if e is None else raw or encode_entry(e),
            )
            for store, key, e, raw in drained
        ]

    # -- what time did: its changelog writes wait for its outputs -------------------------
    @property
    def transactional(self) -> bool:
        """Whether a transaction is open (exactly once: changes and outputs commit
        together, so nothing needs to wait)."""
        return self._journal is not None

    def hold_changes(self) -> list[tuple[str, str]]:
        """Take the changes since the last :meth:`changes` out of the changelog's queue:
        the (store, key) pairs to :meth:`release` once the outputs they go with are
        acknowledged. A window closed or a timer fired is then never durable before its
        result is: after a crash the store has it as it was, and it closes or fires
        again (its result written twice, identical, never lost)."""
        held, self._changes = self._changes, []
        return [(store, key) for store, key, _, _ in held]

    def release(self, keys: list[tuple[str, str]], through: int = -1) -> None:
        """The outputs of held changes are acknowledged, with those of every input record
        of the partition through offset ``through``: the keys go to the changelog with the
        next :meth:`changes`, as they are then, after each store's new
        :meth:`acked_through` (so a store's changelog never has a window's close, say,
        without the mark that the records before it were handled)."""
        if not self._stores:  # closed since
            return
        marks = []
        for store in dict.fromkeys(store for store, _ in keys):
            local = self._stores[store]
            if through > self.acked_through(store):
                local.put(ACKED, Entry(through, through, 0))
                marks.append((store, ACKED))
        self._released += [*marks, *keys]

    def acked_through(self, store: str) -> int:
        """The input offset through which every record of the partition had its outputs
        acknowledged when time's changes to ``store`` were last let go (-1: none known).
        A record at or before it that comes again (a redelivery after a crash) was
        handled: what time closed since (a window, a join's memory) is no reason to call
        it late."""
        entry = self._stores[store].get(ACKED)
        return -1 if entry is None else int(entry.offset)

    def handled_before(self, store: str, offset: int) -> bool:
        """Whether the record at ``offset``, come again, was handled before a crash (at or
        before :meth:`acked_through` of ``store``): a redelivery, whatever time closed
        since; it was folded, or written to the late topic, then."""
        return offset <= self.acked_through(store)

    @property
    def released(self) -> bool:
        """Whether released keys wait for their changelog write."""
        return bool(self._released)

    def __len__(self) -> int:
        return sum(len(store) for store in self._stores.values())

    # -- transactions (exactly once): changes of an aborted batch are rolled back ---------
    def begin(self) -> None:
        """Start journaling changes (the batch of a transaction)."""
        self._journal = []

    def commit(self) -> None:
        """The transaction committed: forget the journal."""
        self._journal = None

    def rollback(self) -> None:
        """The transaction aborted: undo its changes, newest first."""
        for store, key, old in reversed(self._journal or []):
            if old is None:
                store.delete(key)
            else:
                store.put(key, old)
        self._journal = None
        self._changes.clear()
        for rebuild in self.on_rollback:
            rebuild()

    # -- changelog ------------------------------------------------------------------------
    def delivered(self, changelog: str, offset: int) -> None:
        """A changelog record was acknowledged at ``offset``: checkpoint past it."""
        name = self._by_changelog.get(changelog)
        if name is not None:
            local = self._stores[name]
            if offset + 1 > local.checkpoint():
                local.set_checkpoint(offset + 1)

    def restore(self, read: ChangelogReader) -> None:
        """Rebuild every store of this partition from its changelog (from its checkpoint);
        one log line for them all (each changelog's at DEBUG)."""
        began = time.monotonic()
        records = keys = 0
        for spec in self.specs.values():
            done, written = _restore(self._stores[spec.name], spec.changelog, self.partition, read)
            records += done
            keys += written
        self.restored_records += records
        self.views.clear()  # indexes of the stores as they were: built again on first use
        seconds = time.monotonic() - began
        log.info(
            "restored partition %d of %s: %d records (%d keys written) in %.2fs",
            self.partition,
            ", ".join(self.specs),
            records,
            keys,
            seconds,
        )

    def close(self) -> None:
        """Close every store."""
        for local in self._stores.values():
            local.close()
        self._stores.clear()


_RESTORE_BATCH = 50_000
"""Distinct keys collected from the changelog before they are written to the store: only
the last entry of a key in a stretch is decoded and written, and memory stays bounded."""


def _restore(
    store: Store, changelog: str, partition: int, read: ChangelogReader
) -> tuple[int, int]:
    """Restore ``store`` from its changelog partition: the records read and keys written."""
    start = store.checkpoint()
    began = time.monotonic()
    end, records = read(changelog, partition, start)
    total = max(0, end - start)
    done = keys = 0
    latest: dict[bytes, bytes | None] = {}
    with restore_progress(f"restoring {changelog}[{partition}]", total) as advance:
        for key, value, offset in records:
            if key is not None:
                latest[key] = value
            done += 1
            if done % 50_000 == 0:
                advance(done)
                log.info("restoring %s[%d]: %d/%d records", changelog, partition, done, total)
                if len(latest) >= _RESTORE_BATCH:
                    keys += _write(store, latest)
            if offset + 1 >= end:
                break
        keys += _write(store, latest)
    store.set_checkpoint(max(end, start))
    seconds = time.monotonic() - began
    log.debug(
        "restored %s[%d]: %d records (%d keys written) in %.2fs (%.0f records/s)",
        changelog,
        partition,
        done,
        keys,
        seconds,
        done / seconds if seconds else 0,
    )
    return done, keys


def _write(store: Store, latest: dict[bytes, bytes | None]) -> int:
    """Write the last entry of each key collected (None: deleted); empty ``latest``."""
    for key, value in latest.items():
        if value is None:
            store.delete(key.decode())
        else:
            store.put_encoded(key.decode(), value)
    written = len(latest)
    latest.clear()
    return written


@contextmanager
def restore_progress(title: str, total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar on an interactive terminal (for restores worth watching), else nothing."""
    if total < 50_000 or not sys.stderr.isatty():
        yield lambda done: None
        return
    from rich.progress import Progress  # noqa: PLC0415 - only for interactive restores

    with Progress(transient=True) as bar:
        task = bar.add_task(title, total=total)
        yield lambda done: bar.update(task, completed=done)
