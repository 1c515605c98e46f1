"""The state of a worker's partitions: stores, folds, changelog records and restore."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from streamkit.state.aggregate import AggregateSpec, changelog_topic
from streamkit.state.stores import Entry, Store, decode_entry, encode_entry, open_store

__all__ = ["StateManager"]

log = logging.getLogger("streamkit.state")
ChangelogSink = Callable[..., None]


class StateManager:
    """Stores per (store, partition) for an app's aggregates.

    A record is folded at most once per store: each entry remembers the input offset that
    produced it, so a redelivered record (after a crash or a rebalance) re-emits the
    current state instead of folding again, and state rebuilt from the changelog equals a
    fold of the input.
    """

    def __init__(self, app_name: str, specs: Sequence[AggregateSpec], state_dir: Path) -> None:
        self.app_name = app_name
        self.specs = list(specs)
        self.by_input: dict[str, list[AggregateSpec]] = {}
        for spec in self.specs:
            self.by_input.setdefault(spec.input, []).append(spec)
        self.by_store = {spec.store: spec for spec in self.specs}
        self.state_dir = state_dir
        self._stores: dict[tuple[str, int], Store] = {}
        self.changelogs = {changelog_topic(app_name, s.store): s.store for s in self.specs}
        self.restored_records = 0
        self._journal: list[tuple[Store, str, Entry | None]] | None = None

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

    def put(self, store: str, partition: int, key: str, entry: Entry | None) -> None:
        """Set (or with None delete) ``key`` in a store, journaled inside a transaction."""
        local = self.store(store, partition)
        if self._journal is not None:
            self._journal.append((local, key, local.get(key)))
        if entry is None:
            local.delete(key)
        else:
            local.put(key, entry)

    def store(self, store: str, partition: int) -> Store:
        """The store of ``store`` for ``partition`` (opened on first use)."""
        found = self._stores.get((store, partition))
        if found is None:
            kind = self.by_store[store].store_kind
            path = self.state_dir / self.app_name / store / str(partition)
            found = open_store(kind, path)
            self._stores[(store, partition)] = found
        return found

    def get(self, store: str, key: str) -> tuple[int, Entry] | None:
        """The entry of ``key`` in whichever local partition holds it (with the partition)."""
        spec = self.by_store[store]
        for (name, partition), local in list(self._stores.items()):  # read from HTTP threads
            if name != store:
                continue
            entry = local.get(key)
            if entry is not None and not _expired(spec, entry):
                return partition, entry
        return None

    def partitions(self, store: str) -> list[int]:
        """Partitions of ``store`` held here."""
        return sorted(p for name, p in self._stores if name == store)

    def apply(
        self,
        spec: AggregateSpec,
        partition: int,
        offset: int,
        timestamp: int,
        key: str,
        event: Any,
        sink: ChangelogSink,
        encode_output: Callable[[Any], bytes | None] | None,
    ) -> bool:
        """Fold one event into ``key``'s state and sink the changelog (and output) record.

        Returns False when the record was folded before (a redelivery): the current state is
        written again, not folded again. The fold's exceptions propagate.
        """
        store = self.store(spec.store, partition)
        entry = store.get(key)
        if entry is not None and _expired(spec, entry):
            entry = None
        folded = entry is None or entry.offset < offset
        if folded:
            state = spec.fold(None if entry is None else entry.state, event)
            entry = None if state is None else Entry(state, offset, timestamp)
            self.put(spec.store, partition, key, entry)
        raw_key = key.encode()
        changelog = changelog_topic(self.app_name, spec.store)
        sink(changelog, raw_key, None if entry is None else encode_entry(entry), None, timestamp,
             partition)  # fmt: skip
        if spec.output is not None and encode_output is not None:
            value = None if entry is None else encode_output(entry.state)
            sink(spec.output, raw_key, value, None, timestamp)
        return folded

    def delivered(self, topic: str, partition: int, offset: int) -> None:
        """A changelog record was acknowledged at ``offset``: checkpoint past it."""
        store = self.changelogs.get(topic)
        if store is not None and (store, partition) in self._stores:
            local = self._stores[(store, partition)]
            if offset + 1 > local.checkpoint():
                local.set_checkpoint(offset + 1)

    def restore(
        self,
        partitions: Iterable[tuple[str, int]],
        read: Callable[
            [str, int, int], tuple[int, Iterable[tuple[bytes | None, bytes | None, int]]]
        ],
    ) -> None:
        """Rebuild the stores of assigned input partitions from their changelogs.

        ``read(changelog, partition, start)`` returns the changelog's end offset and its
        records ``(key, value, offset)`` from ``start`` to that end.
        """
        for topic, partition in partitions:
            for spec in self.by_input.get(topic, []):
                self._restore_one(spec, partition, read)

    def _restore_one(
        self,
        spec: AggregateSpec,
        partition: int,
        read: Callable[
            [str, int, int], tuple[int, Iterable[tuple[bytes | None, bytes | None, int]]]
        ],
    ) -> None:
        store = self.store(spec.store, partition)
        changelog = changelog_topic(self.app_name, spec.store)
        start = store.checkpoint()
        began = time.monotonic()
        end, records = read(changelog, partition, start)
        total = max(0, end - start)
        done = 0
        with _progress(f"restoring {changelog}[{partition}]", total) as advance:
            for key, value, offset in records:
                if key is not None:
                    if value is None:
                        store.delete(key.decode())
                    else:
                        store.put(key.decode(), decode_entry(value))
                done += 1
                if done % 10_000 == 0:
                    advance(done)
                    if done % 50_000 == 0:
                        log.info(
                            "restoring %s[%d]: %d/%d records", changelog, partition, done, total
                        )
                if offset + 1 >= end:
                    break
        store.set_checkpoint(max(end, start))
        self.restored_records += done
        seconds = time.monotonic() - began
        log.info(
            "restored %s[%d]: %d records (%d keys) in %.2fs (%.0f records/s)",
            changelog, partition, done, len(store), seconds, done / seconds if seconds else 0,
        )  # fmt: skip

    def release(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Close the stores of revoked input partitions."""
        for topic, partition in partitions:
            for spec in self.by_input.get(topic, []):
                local = self._stores.pop((spec.store, partition), None)
                if local is not None:
                    local.close()

    def close(self) -> None:
        """Close every store."""
        for local in self._stores.values():
            local.close()
        self._stores.clear()


@contextmanager
def _progress(title: str, total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar on an interactive terminal (for restores worth watching), else nothing."""
    if total < 50_000 or not sys.stderr.isatty():
        yield lambda done: None
        return
    from rich.progress import Progress  # noqa: PLC0415 - only for interactive restores

    with Progress(transient=True) as bar:
        task = bar.add_task(title, total=total)
        yield lambda done: bar.update(task, completed=done)


def _expired(spec: AggregateSpec, entry: Entry) -> bool:
    return spec.ttl is not None and entry.timestamp + spec.ttl * 1000 < time.time() * 1000
