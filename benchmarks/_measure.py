"""What a benchmark run measures of an implementation: its process tree's CPU seconds and
memory (every process, summed), and its output read back whole: counted, duplicates
found, a sample decoded and compared with what the map must give, and the throughput over
the steady part of the run.

The steady part: every implementation starts cold (a JVM compiles, a group forms, a
second worker joins), so the first ``WARMUP`` of each output partition's records are left
out of the rate, for everyone alike: the rate is the records appended from the moment every partition is
past its share to the last record, over that time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from bisect import bisect_left
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from streamkit.engines.kafka.clients import read_until

__all__ = ["WARMUP", "Outputs", "Tree", "count", "read_outputs", "span_ms", "stop", "tree_rss_mb"]

WARMUP = 0.2
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Tree:
    """Samples of a process and its descendants: peak total RSS, CPU seconds per pid."""

    root: int
    peak_rss_mb: float = 0.0
    largest_rss_mb: float = 0.0
    """The peak RSS of the largest single process (a worker)."""
    _cpu: dict[int, float] = field(default_factory=dict)

    def sample(self) -> None:
        """Read every process of the tree now."""
        total_kb = 0
        for pid in _descendants(self.root):
            try:
                stat = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            self._cpu[pid] = max(self._cpu.get(pid, 0.0), (int(stat[11]) + int(stat[12])) / _TICKS)
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
                    self.largest_rss_mb = max(self.largest_rss_mb, int(line.split()[1]) / 1024)
        self.peak_rss_mb = max(self.peak_rss_mb, total_kb / 1024)

    @property
    def cpu_seconds(self) -> float:
        """CPU seconds (user + system) of every process seen, at its last sample."""
        return sum(self._cpu.values())

    @property
    def processes(self) -> int:
        """Processes seen."""
        return len(self._cpu)


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


@dataclass
class Outputs:
    """An output topic read back."""

    count: int
    unique: int
    measured: int
    seconds: float
    wrong: list[str]

    @property
    def duplicates(self) -> int:
        """Records of an id already seen."""
        return self.count - self.unique

    @property
    def rate(self) -> float:
        """Records per second over the steady part."""
        return self.measured / self.seconds if self.seconds > 0 else 0.0


def _id(value: bytes) -> int:
    """The ``id`` of a BenchResult in single-object encoding: its first field, a zig-zag
    varint after the 10-byte header."""
    shift, n, i = 0, 0, 10
    while True:
        byte = value[i]
        n |= (byte & 0x7F) << shift
        if byte < 0x80:
            return (n >> 1) ^ -(n & 1)
        shift += 7
        i += 1


def read_outputs(
    bootstrap: str,
    topic: str,
    partitions: int,
    expected: dict[int, dict[str, Any]],
    decode: Any,
) -> Outputs:
    """Read ``topic`` whole: count, duplicates, the sample ``expected`` (id -> output)
    decoded with ``decode`` and compared, and the steady-part rate."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-read-{topic}",
            "enable.auto.commit": False,
            "fetch.max.bytes": 52_428_800,
        }
    )
    try:
        ranges = {
            (topic, p): consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            for p in range(partitions)
        }
        times: dict[int, list[int]] = {p: [] for p in range(partitions)}
        ids: set[int] = set()
        count, wrong = 0, []
        for msg in read_until(consumer, ranges, stall=60):
            value = msg.value() or b""
            ident = _id(value)
            count += 1
            ids.add(ident)
            times[msg.partition() or 0].append(msg.timestamp()[1])
            want = expected.get(ident)
            if want is not None and (got := decode(value)) != want and len(wrong) < 3:
                wrong.append(f"id {ident}: {got} != {want}")
    finally:
        consumer.close()
    # The window opens when every partition is past its warm-up share; it holds every
    # record appended from then on (append times never go back within a partition).
    skipped = {p: int(len(t) * WARMUP) for p, t in times.items()}
    start = max((t[skipped[p]] for p, t in times.items() if len(t) > skipped[p]), default=0)
    end = max((t[-1] for t in times.values() if t), default=0)
    measured = sum(len(t) - bisect_left(t, start) for t in times.values())
    return Outputs(count, len(ids), measured, max(0.001, (end - start) / 1000), wrong)


def tree_rss_mb(pid: int) -> float:
    """The total RSS of a process and its descendants now, in MB."""
    tree = Tree(pid)
    tree.sample()
    return tree.peak_rss_mb


def count(consumer: Consumer, topic: str, partitions: int) -> int:
    """Records in ``topic`` (0 while a new topic's leaders settle)."""
    try:
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(partitions)
        )
    except KafkaException:
        return 0


def span_ms(consumer: Consumer, topic: str, partitions: int) -> tuple[int, int]:
    """First and last append time over every partition of ``topic``."""
    first, last = None, None
    for p in range(partitions):
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        for offset in {low, high - 1} if high > low else set():
            consumer.assign([TopicPartition(topic, p, offset)])
            msg = None
            deadline = time.monotonic() + 10
            while msg is None and time.monotonic() < deadline:
                msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                stamp = msg.timestamp()[1]
                first = stamp if first is None else min(first, stamp)
                last = stamp if last is None else max(last, stamp)
    return first or 0, last or 0


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after a minute."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
