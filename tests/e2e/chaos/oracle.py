"""The accounting oracle: reads inputs, outputs, dead letters and state back from Kafka
(``read_committed``) and says what was lost, duplicated, reordered or committed too early.

Every input carries a unique ``id``, its ``key`` and a per-key ``seq``; outputs carry the
same three (and, from the stateful app, the input's partition and offset); dead letters
carry the original bytes and the ``__streamkit.error.*`` coordinates. Output and DLQ topics
use LogAppendTime, so "acknowledged before committed" can be checked against commit
samples taken during the run.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import Consumer, TopicPartition

from streamkit.engines.kafka import read_until
from streamkit.engines.kafka.clients import BOUNDED_READ
from tests.e2e.chaos.app import tally


@dataclass(frozen=True)
class Record:
    """One record read back: where it is, when it was appended, its decoded value."""

    partition: int
    offset: int
    appended_ms: int
    key: str
    value: dict[str, Any]
    headers: dict[str, bytes]


@dataclass(frozen=True)
class CommitSample:
    """The group's committed offset of an input partition, as seen at ``at_ms``."""

    at_ms: int
    partition: int
    offset: int


@dataclass
class Verdict:
    """What the oracle found. ``problems`` lists what breaks the guarantee."""

    inputs: int = 0
    outputs: int = 0
    dead_letters: int = 0
    filtered: int = 0
    lost: list[int] = field(default_factory=list)
    phantoms: list[str] = field(default_factory=list)
    duplicates: int = 0
    out_of_order: list[str] = field(default_factory=list)
    early_commits: list[str] = field(default_factory=list)
    state_mismatches: list[str] = field(default_factory=list)
    recovery_ms: int = 0
    recoveries_ms: list[int] = field(default_factory=list)
    samples: int = 0

    def problems(self, max_duplicates: int) -> list[str]:
        """Each broken promise, in one line; empty when the run kept every guarantee."""
        found = []
        if self.lost:
            found.append(f"{len(self.lost)} inputs lost (ids {self.lost[:10]})")
        if self.phantoms:
            found.append(f"{len(self.phantoms)} records without an input: {self.phantoms[:5]}")
        if self.duplicates > max_duplicates:
            found.append(f"{self.duplicates} duplicates (at most {max_duplicates} allowed)")
        if self.out_of_order:
            found.append(f"per-key order broken: {self.out_of_order[:5]}")
        if self.early_commits:
            found.append(f"offsets committed before outputs: {self.early_commits[:5]}")
        if self.state_mismatches:
            found.append(f"state differs from the fold of the input: {self.state_mismatches[:5]}")
        return found


def read_topic(bootstrap: str, topic: str, *, stall: float = 60.0) -> list[Record]:
    """Every committed record of ``topic``, JSON-decoded, in partition and offset order."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"oracle-{uuid.uuid4().hex[:8]}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            **BOUNDED_READ,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=15).topics[topic].partitions
        ranges = {}
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=15)
            ranges[(topic, p)] = (low, high)
        records = [
            Record(
                msg.partition() or 0,
                msg.offset() or 0,
                msg.timestamp()[1],
                (msg.key() or b"").decode(),
                orjson.loads(msg.value()) if msg.value() else {},
                {k: v or b"" for k, v in msg.headers() or []},
            )
            for msg in read_until(consumer, ranges, stall=stall)
        ]
    finally:
        consumer.close()
    return sorted(records, key=lambda r: (r.partition, r.offset))


def verify(
    inputs: list[Record],
    outputs: list[Record],
    dead_letters: list[Record],
    *,
    samples: list[CommitSample] = (),  # type: ignore[assignment]
    changelog: list[Record] | None = None,
    faults_ms: list[int] = (),  # type: ignore[assignment]
) -> Verdict:
    """Account for every input; see the module docstring for what is checked."""
    verdict = Verdict(inputs=len(inputs), outputs=len(outputs), dead_letters=len(dead_letters))
    by_id = {r.value["id"]: r for r in inputs}
    should_output = {
        i for i, r in by_id.items() if not r.value.get("poison") and not r.value.get("drop")
    }
    should_dead = {i for i, r in by_id.items() if r.value.get("poison")}
    verdict.filtered = sum(1 for r in inputs if r.value.get("drop") and not r.value.get("poison"))

    out_ids = Counter(r.value["id"] for r in outputs)
    dlq_ids = Counter(r.value["id"] for r in dead_letters)
    verdict.duplicates = sum(n - 1 for n in out_ids.values()) + sum(n - 1 for n in dlq_ids.values())
    verdict.lost = sorted((should_output - out_ids.keys()) | (should_dead - dlq_ids.keys()))
    verdict.phantoms = [f"output id {i}" for i in sorted(out_ids.keys() - should_output)] + [
        f"dead letter id {i}" for i in sorted(dlq_ids.keys() - should_dead)
    ]
    for r in outputs:
        source = by_id.get(r.value["id"])
        src = r.value.get("src")
        if source is not None and src is not None and src != [source.partition, source.offset]:
            verdict.phantoms.append(f"output {r.value['id']} names source {src}")
    for r in dead_letters:
        source = by_id.get(r.value["id"])
        named = (
            int(r.headers.get("__streamkit.error.partition", b"-1")),
            int(r.headers.get("__streamkit.error.offset", b"-1")),
        )
        if source is not None and named != (source.partition, source.offset):
            verdict.phantoms.append(f"dead letter {r.value['id']} names source {named}")

    verdict.out_of_order = _order(inputs, outputs, should_output)
    verdict.early_commits = _early_commits(inputs, outputs, dead_letters, samples)
    verdict.samples = len(samples)
    if changelog is not None:
        verdict.state_mismatches = _state(inputs, changelog)
    verdict.recoveries_ms = _recoveries(inputs, outputs, faults_ms)
    verdict.recovery_ms = max(verdict.recoveries_ms, default=0)
    return verdict


def _order(inputs: list[Record], outputs: list[Record], should_output: set[int]) -> list[str]:
    """Per key, outputs in log order: each is the next expected seq or a redelivery of one
    already seen (a replay after a fault); anything else breaks order."""
    expected: dict[str, list[int]] = defaultdict(list)
    for r in sorted(inputs, key=lambda r: r.value["seq"]):
        if r.value["id"] in should_output:
            expected[r.value["key"]].append(r.value["seq"])
    position: dict[str, int] = defaultdict(int)
    broken = []
    for r in sorted(outputs, key=lambda r: (r.partition, r.offset)):
        key, seq = r.value["key"], r.value["seq"]
        seqs, at = expected[key], position[key]
        if at < len(seqs) and seq == seqs[at]:
            position[key] = at + 1
        elif seq not in seqs[:at]:
            broken.append(
                f"key {key}: seq {seq} where {seqs[at] if at < len(seqs) else 'none'} was due"
            )
    return broken


def _early_commits(
    inputs: list[Record],
    outputs: list[Record],
    dead_letters: list[Record],
    samples: list[CommitSample],
) -> list[str]:
    """A committed offset must never pass an input whose output or dead letter was not
    yet appended when the commit was seen."""
    first: dict[int, int] = {}
    for r in [*outputs, *dead_letters]:
        ident = r.value["id"]
        first[ident] = min(first.get(ident, r.appended_ms), r.appended_ms)
    by_partition: dict[int, list[Record]] = defaultdict(list)
    for r in inputs:
        by_partition[r.partition].append(r)
    early = []
    for sample in samples:
        for r in by_partition[sample.partition]:
            if r.offset >= sample.offset or (r.value.get("drop") and not r.value.get("poison")):
                continue
            done = first.get(r.value["id"])
            if done is None or done > sample.at_ms:
                early.append(
                    f"p{sample.partition} committed {sample.offset} at {sample.at_ms}, "
                    f"input {r.offset} appended {done}"
                )
                break
    return early


def _state(inputs: list[Record], changelog: list[Record]) -> list[str]:
    """The last changelog entry of each key equals the fold of the key's inputs."""
    folded: dict[str, dict[str, Any]] = {}
    for r in sorted(inputs, key=lambda r: r.value["seq"]):
        folded[r.value["key"]] = tally(folded.get(r.value["key"]), r.value)
    stored: dict[str, Any] = {}
    for r in changelog:  # partition and offset order: the last entry of a key wins
        stored[r.key] = r.value.get("s")
    return [
        f"{key}: stored {stored.get(key)} != folded {state}"
        for key, state in sorted(folded.items())
        if stored.get(key) != state
    ]


def _recoveries(inputs: list[Record], outputs: list[Record], faults_ms: list[int]) -> list[int]:
    """For each fault, the longest time over input partitions from the fault to the first
    output appended after it for an input of that partition."""
    source_partition = {r.value["id"]: r.partition for r in inputs}
    each = []
    for fault in faults_ms:
        first: dict[int, int] = {}
        for r in outputs:
            if r.appended_ms >= fault:
                p = source_partition.get(r.value["id"], -1)
                first[p] = min(first.get(p, r.appended_ms), r.appended_ms)
        each.append(max(first.values()) - fault if first else 0)
    return each
