"""The RocksDB store without a write-ahead log: after a crash it holds a prefix of its
writes in which the checkpoint never runs ahead of the data, so a restore from the
changelog at the checkpoint rebuilds it."""

import subprocess
import sys
import textwrap
from pathlib import Path

from streamkit.state.stores import Entry, RocksDBStore

CRASH = textwrap.dedent(
    """
    import os, sys
    from streamkit.state.stores import Entry, RocksDBStore
    store = RocksDBStore(__import__("pathlib").Path(sys.argv[1]))
    for offset in range(5000):
        store.put(f"k{offset}", Entry(offset, offset, 0))  # the change, then its ack
        store.set_checkpoint(offset + 1)
        if offset == 2500:
            store._db.flush()  # a memtable flush, as RocksDB makes on its own
    os._exit(9)  # kill -9: no close, no flush
    """
)


def test_a_crash_leaves_a_checkpoint_no_later_than_the_data(tmp_path: Path) -> None:
    path = tmp_path / "db"
    done = subprocess.run([sys.executable, "-c", CRASH, str(path)], check=False, timeout=60)
    assert done.returncode == 9
    store = RocksDBStore(path)
    checkpoint = store.checkpoint()
    assert 2000 <= checkpoint <= 2501  # written every 1000 offsets, kept up to the flush
    assert all(store.get(f"k{offset}") is not None for offset in range(checkpoint))
    assert store.get("k4999") is None  # after the flush: gone with the memtable
    store.close()


def test_close_keeps_the_last_checkpoint_and_the_cache_follows_writes(tmp_path: Path) -> None:
    store = RocksDBStore(tmp_path / "db", cached=2)
    for n in range(5):
        store.put(f"k{n}", Entry(n, n, 0))
    store.delete("k4")
    assert [store.get(f"k{n}") for n in range(5)] == [Entry(n, n, 0) for n in range(4)] + [None]
    store.set_checkpoint(7)
    store.close()
    reopened = RocksDBStore(tmp_path / "db")
    assert reopened.checkpoint() == 7
    assert len(reopened) == 4
    reopened.close()
