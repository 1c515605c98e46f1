"""Stream-stream joins on a real broker, killed (``kill -9``) three times mid-stream:
inner, left and outer results equal a batch computation over both inputs (an oracle),
with identical duplicates at least once and none exactly once; no record is both
matched and unmatched; the late topics hold exactly the late records."""

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from streamkit.ops.admin import admin_client, delete_topics
from tests.integration.helpers import Processes, create_app_topics, read_all
from tests.integration.runtime.conftest import wait_for
from tests.integration.state.conftest import children_of

ROOT = Path(__file__).resolve().parents[3]
APP = "tests.integration.apps.joins"
T0 = int(time.time() * 1000) - 3_600_000  # recent: older records would go with retention
WITHIN = 5_000
FAR = 7_200_000  # two hours of event time on: every record is evicted (grace is 5 min)
LATE = 1_800_000  # how far behind its batch a late record is: far past within and grace
Record = tuple[str, int, str, int, int]
"""Topic ("o" or "p"), n, key, event time, and the n whose Kafka key it has (its own, or
for a late record an earlier one's of its batch: the same input partition, so that the
router writes it after a record of its key, in the same repartition partition)."""


@dataclass
class Joins:
    bootstrap: str
    config: dict[str, Any]
    tag: str
    state_dir: Path
    eos: bool
    runs: Processes  # the `streamkit run`s it started
    sent: list[Record] = field(default_factory=list)

    def topic(self, name: str) -> str:
        return f"join-{name}-{self.tag}"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "STREAMKIT_BOOTSTRAP_SERVERS": self.bootstrap,
            "STREAMKIT_STATE_DIR": str(self.state_dir),
            "JOIN_TAG": self.tag,
            "JOIN_EOS": "1" if self.eos else "0",
            "PYTHONPATH": str(ROOT),
            "STREAMKIT_KAFKA_CONSUMER_SESSION_TIMEOUT_MS": "6000",
            "STREAMKIT_KAFKA_PRODUCER_TRANSACTION_TIMEOUT_MS": "15000",
        }

    def start(self) -> subprocess.Popen[bytes]:
        return self.runs.start(
            [
                sys.executable,
                "-m",
                "streamkit",
                "run",
                APP,
                "--batch-size",
                "20",
                "--commit-interval",
                "0.3",
                "--restart-backoff",
                "0.2",
            ],
            self.env(),
        )

    def send(self, records: list[Record]) -> None:
        producer = Producer({**self.config, "enable.idempotence": True, "linger.ms": 5})
        for side, n, key, t, via in records:
            topic = self.topic("orders" if side == "o" else "payments")
            producer.produce(
                topic, orjson.dumps({"n": n, "key": key}), f"r{via}".encode(), timestamp=t
            )
        assert producer.flush(30) == 0
        self.sent += records

    def results(self, how: str) -> list[tuple[int | None, int | None]]:
        isolation = "read_committed" if self.eos else "read_uncommitted"
        return [
            (doc["o"], doc["p"])
            for doc in (
                orjson.loads(m.value() or b"null")
                for m in read_all(self.config, self.topic(how), isolation=isolation)
            )
        ]

    def late(self, how: str) -> list[int]:
        """The ``n`` of every record in the late topic of the ``how`` join."""
        topic = f"join-{self.tag}-paid-{how}-late"
        isolation = "read_committed" if self.eos else "read_uncommitted"
        return [
            orjson.loads(m.value())["event"]["n"]
            for m in read_all(self.config, topic, isolation=isolation)
        ]


def _traffic(first: int, count: int, seed: int, late: int = 0) -> list[Record]:
    """Orders and payments over 20 keys, 0.2 s of event time apart, out of order by up to
    2 s: a key has a record every 4 s or so, so some records meet a partner within 5 s
    and others do not. Then ``late`` records LATE behind, each after a record of its key
    in its input partition: late whatever the routers' order."""
    rng = random.Random(seed)
    found = []
    for n in range(first, first + count):
        side = "o" if rng.random() < 0.5 else "p"
        t = T0 + n * 200 + rng.randint(-2000, 2000)
        found.append((side, n, f"k{rng.randrange(20)}", t, n))
    for i, (side, n, key, t, _) in enumerate(rng.sample(found, late)):
        found.append((side, first + count + i, key, t - LATE, n))
    return found


def _late(sent: list[Record]) -> set[int]:
    """The records sent LATE behind their batch."""
    return {n for _, n, _, t, _ in sent if t < T0 - LATE // 2}


def _oracle(sent: list[Record], how: str) -> set[tuple[int | None, int | None]]:
    """Every pair of an order and a payment of one key at most WITHIN apart; with ``left``
    also each order without one, with ``outer`` each payment without one too. Late
    records join nothing."""
    late = _late(sent)
    orders = [(n, k, t) for s, n, k, t, _ in sent if s == "o" and n not in late]
    payments = [(n, k, t) for s, n, k, t, _ in sent if s == "p" and n not in late]
    pairs = {
        (o, p)
        for o, ko, to in orders
        for p, kp, tp in payments
        if ko == kp and abs(to - tp) <= WITHIN
    }
    found: set[tuple[int | None, int | None]] = set(pairs)
    if how in ("left", "outer"):
        found |= {(o, None) for o, _, _ in orders if all(o != a for a, _ in pairs)}
    if how == "outer":
        found |= {(None, p) for p, _, _ in payments if all(p != b for _, b in pairs)}
    return found


@pytest.fixture(params=[False, True], ids=["at-least-once", "exactly-once"])
def joins(
    request: pytest.FixtureRequest,
    kafka_bootstrap: str,
    kafka_config: dict[str, Any],
    tmp_path: Path,
) -> Iterator[Joins]:
    setup = Joins(
        kafka_bootstrap,
        kafka_config,
        uuid.uuid4().hex[:8],
        tmp_path / "state",
        request.param,
        Processes(tmp_path),
    )
    made = create_app_topics(APP, setup.env())
    yield setup
    setup.runs.stop_all(timeout=60)
    delete_topics(admin_client(kafka_config), made)


def test_joins_equal_the_oracle_after_repeated_kill_9s(joins: Joins) -> None:
    run = joins.start()
    joins.send(_traffic(0, 300, seed=1, late=10))
    for kill, first in enumerate((400, 700, 1000)):
        wait_for(lambda n=kill: len(joins.results("inner")) > 20 * (n + 1), 90, "pairs joined")
        (worker,) = children_of(run.pid)
        os.kill(worker, signal.SIGKILL)  # mid-stream: the supervisor starts a new worker
        wait_for(lambda w=worker: children_of(run.pid) not in ([], [w]), 60, "a new worker")
        joins.send(_traffic(first, 290, seed=first, late=10))
    expected = {how: _oracle(joins.sent, how) for how in ("inner", "left", "outer")}
    flush: list[Record] = []
    for i in range(20):
        flush.append(("o", 10_000 + 2 * i, f"k{i}", T0 + FAR, 10_000 + 2 * i))
        flush.append(("p", 10_001 + 2 * i, f"k{i}", T0 + FAR, 10_001 + 2 * i))
    flushed = {n for _, n, _, _, _ in flush}

    def complete(how: str) -> bool:
        got = {(o, p) for o, p in joins.results(how) if o not in flushed and p not in flushed}
        return got >= expected[how]

    # Every pair is written once both records are in; only then do orders and payments
    # far in event time come on every key: the stream time passes every window and grace,
    # so every waiting record is evicted (its unmatched result written). Sent earlier,
    # they would make the records still unread late.
    wait_for(lambda: complete("inner"), 180, "every pair")
    joins.send(flush)
    for how in ("left", "outer"):
        wait_for(lambda h=how: complete(h), 180, f"every {how} result")
    for how in ("inner", "left", "outer"):
        got = [(o, p) for o, p in joins.results(how) if o not in flushed and p not in flushed]
        assert set(got) == expected[how], how
        if joins.eos:
            assert max(Counter(got).values()) == 1, how  # each result exactly once
        matched = {o for o, p in got if p is not None} | {p for o, p in got if o is not None}
        unmatched = {o for o, p in got if p is None} | {p for o, p in got if o is None}
        assert not matched & unmatched, how  # never both matched and unmatched
        late = joins.late(how)
        assert set(late) == _late(joins.sent), how  # exactly the late records
        if joins.eos:
            assert len(late) == len(set(late)), how
    code, err = joins.runs.stop(run, 90)
    assert code == 0, err
    assert err.count("exited with code -9; restarting") == 3
