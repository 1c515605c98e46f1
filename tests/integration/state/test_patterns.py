"""Tables, a gather, a join and a re-keyed aggregate on a real broker, with a ``kill -9``
in the middle: every order is enriched from the restored tables, decided once (exactly
once) or with identical duplicates (at least once), joined with its payment, and folded
into its customer's totals as a fold per customer says."""

import os
import signal
import subprocess
import sys
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
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
APP = "tests.integration.apps.patterns"
ORDERS = 60
CUSTOMERS = 7


@dataclass
class Patterns:
    bootstrap: str
    config: dict[str, Any]
    tag: str
    state_dir: Path
    eos: bool
    runs: Processes  # the `streamkit run`s it started

    def topic(self, name: str) -> str:
        return f"pat-{name}-{self.tag}"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "STREAMKIT_BOOTSTRAP_SERVERS": self.bootstrap,
            "STREAMKIT_STATE_DIR": str(self.state_dir),
            "PAT_TAG": self.tag,
            "PAT_EOS": "1" if self.eos else "0",
            "PYTHONPATH": str(ROOT),
            "STREAMKIT_KAFKA_CONSUMER_SESSION_TIMEOUT_MS": "6000",
            "STREAMKIT_KAFKA_PRODUCER_TRANSACTION_TIMEOUT_MS": "15000",
            "PAT_TIMEOUT": "20s",  # longer than a recovery: no group times out for the kill
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

    def send(self, topic: str, records: list[tuple[str, Any]]) -> None:
        producer = Producer({**self.config, "enable.idempotence": True, "linger.ms": 5})
        for key, value in records:
            producer.produce(self.topic(topic), orjson.dumps(value), key.encode())
        assert producer.flush(30) == 0

    def read(self, topic: str, suffix: str = "") -> list[tuple[str, Any]]:
        isolation = "read_committed" if self.eos else "read_uncommitted"
        name = self.topic(topic) + suffix
        return [
            ((m.key() or b"").decode(), orjson.loads(m.value() or b"null"))
            for m in read_all(self.config, name, isolation=isolation)
        ]


@pytest.fixture(params=[False, True], ids=["at-least-once", "exactly-once"])
def patterns(
    request: pytest.FixtureRequest,
    kafka_bootstrap: str,
    kafka_config: dict[str, Any],
    tmp_path: Path,
) -> Iterator[Patterns]:
    setup = Patterns(
        kafka_bootstrap,
        kafka_config,
        uuid.uuid4().hex[:8],
        tmp_path / "state",
        eos=request.param,
        runs=Processes(tmp_path),
    )
    made = create_app_topics(APP, setup.env())
    yield setup
    setup.runs.stop_all(timeout=60)
    delete_topics(admin_client(kafka_config), [*made, setup.topic("replayed")])


def _orders(first: int, last: int) -> dict[str, list[tuple[str, Any]]]:
    """Orders ``first..last-1`` (keyed by order id), a payment for two in three (keyed by
    payment id), a stock answer for one in two (keyed by product)."""
    orders = [
        (f"o{n}", {"id": f"o{n}", "customer": f"c{n % CUSTOMERS}", "amount": n})
        for n in range(first, last)
    ]
    payments = [(f"pay{n}", {"id": f"o{n}", "amount": n}) for n in range(first, last) if n % 3]
    stock = [(f"sku{n % 4}", {"id": f"o{n}", "ok": True}) for n in range(first, last) if n % 2 == 0]
    return {"orders": orders, "payments": payments, "stock": stock}


def test_tables_gather_join_and_rekeying_hold_across_a_kill_9(patterns: Patterns) -> None:
    patterns.send("regions", [(f"r{r}", {"name": f"region {r}"}) for r in range(3)])
    patterns.send(
        "customers",
        [
            (f"c{c}", {"id": f"c{c}", "tier": f"tier{c % 2}", "region": f"r{c % 3}"})
            for c in range(CUSTOMERS)
        ],
    )
    run = patterns.start()
    for topic, records in _orders(0, ORDERS // 2).items():
        patterns.send(topic, records)
    wait_for(
        lambda: len({v["id"] for _, v in patterns.read("enriched")}) >= 10,
        90,
        "the first orders enriched",
    )
    (worker,) = children_of(run.pid)
    os.kill(worker, signal.SIGKILL)  # groups pending, tables and stores to restore
    for topic, records in _orders(ORDERS // 2, ORDERS).items():
        patterns.send(topic, records)
    ids = {f"o{n}" for n in range(ORDERS)}
    wait_for(
        lambda: {v["id"] for _, v in patterns.read("decisions")} == ids,
        180,
        "a decision for every order",
    )
    wait_for(
        lambda: {v["id"] for _, v in patterns.read("enriched")} == ids, 60, "every order enriched"
    )

    # Enriched from both tables, restored after the kill: the same answers.
    for _, v in patterns.read("enriched"):
        c = int(v["id"][1:]) % CUSTOMERS
        assert v == {"id": v["id"], "tier": f"tier{c % 2}", "region": f"region {c % 3}"}
    # One decision per order (identical duplicates at least once): complete when all three
    # answered, else partial at the timeout, with the parts that were there.
    decisions: dict[str, list[Any]] = defaultdict(list)
    for key, v in patterns.read("decisions"):
        assert key == v["id"]
        decisions[v["id"]].append(v)
    names = {t: patterns.topic(t) for t in ("orders", "payments", "stock")}
    for n in range(ORDERS):
        parts = sorted(
            names[t]
            for t, on in (("orders", True), ("payments", n % 3 != 0), ("stock", n % 2 == 0))
            if on
        )
        expected = {"id": f"o{n}", "complete": len(parts) == 3, "parts": parts}
        assert all(d == expected for d in decisions[f"o{n}"]), decisions[f"o{n}"]
        if patterns.eos:
            assert len(decisions[f"o{n}"]) == 1
    # The join: each order with a payment, once per pair.
    paid = {v["id"]: v for _, v in patterns.read("paid")}
    assert paid == {
        f"o{n}": {"id": f"o{n}", "amount": n, "paid": n} for n in range(ORDERS) if n % 3
    }
    # Re-keyed totals: the last total of each customer is the fold of its orders.
    last = dict(patterns.read("totals"))
    for c in range(CUSTOMERS):
        mine = [n for n in range(ORDERS) if n % CUSTOMERS == c]
        assert last[f"c{c}"] == {"orders": len(mine), "spent": sum(mine)}
    if not patterns.eos:
        return
    # A shadow replay of the enrichment reads the tables too, and answers the same.
    replayed = subprocess.run(
        [
            sys.executable,
            "-m",
            "streamkit",
            "replay",
            "shadow",
            "--app",
            APP,
            "--topic",
            patterns.topic("by-customer"),
            "--from",
            "0",
            "--to-topic",
            patterns.topic("replayed"),
        ],
        env=patterns.env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert replayed.returncode == 0, replayed.stderr
    again = patterns.read("replayed")
    assert sorted(v["id"] for _, v in again) == sorted(
        v["id"] for _, v in patterns.read("enriched")
    )
    assert {v["id"]: v for _, v in again} == {v["id"]: v for _, v in patterns.read("enriched")}
    # A shadow replay of the whole app runs its topology (the gather, the join, the
    # re-keyed totals: hops through repartition topics) on the replayed records' time.
    whole = subprocess.run(
        [
            sys.executable,
            "-m",
            "streamkit",
            "replay",
            "shadow",
            "--app",
            APP,
            "--from",
            "0",
            "--suffix",
            ".r",
        ],
        env=patterns.env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert whole.returncode == 0, whole.stderr
    created = next(line for line in whole.stdout.splitlines() if line.startswith("created "))
    replayed_topics = created.removeprefix("created ").split(", ")
    try:
        assert not any(topic.endswith("-repartition.r") for topic in replayed_topics)
        assert {v["id"]: v for _, v in patterns.read("paid", ".r")} == paid
        assert dict(patterns.read("totals", ".r")) == last
        live = {v["id"]: v for vs in decisions.values() for v in vs}
        again_decided = {v["id"]: v for _, v in patterns.read("decisions", ".r")}
        complete = {k: v for k, v in live.items() if v["complete"]}
        assert {k: v for k, v in again_decided.items() if v["complete"]} == complete
        assert all(live[k] == v for k, v in again_decided.items())  # partials too, if due
    finally:
        delete_topics(admin_client(patterns.config), replayed_topics)
