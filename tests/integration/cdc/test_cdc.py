"""Change data capture with real parts: PostgreSQL (Debian's server, wal_level=logical),
Kafka Connect with Debezium's PostgreSQL connector (Maven Central jars, the connector
file of deploy/connect), the test broker, and the app of tests/integration/apps/cdc.py.

- inserts, updates and deletes arrive as typed changes, in commit order per key;
- the read model (a store projected to a compacted topic) equals the table after the run
  (a SELECT), across a ``kill -9`` of the worker and its restart;
- a delete's tombstone removes the product from the table the orders are enriched with;
- an outbox insert rolled back gives no event; each committed one exactly one reservation
  (exactly once) or at least one (at least once).
"""

import os
import random
import signal
import subprocess
import sys
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from streamkit.ops.admin import admin_client, delete_topics
from streamkit.ops.local_postgres import PostgresInfo
from tests.integration.helpers import create_app_topics, read_all, stop_all
from tests.integration.runtime.conftest import wait_for
from tests.integration.state.conftest import children_of

ROOT = Path(__file__).resolve().parents[3]
APP = "tests.integration.apps.cdc"
DEPLOY = ROOT / "deploy" / "connect"


def _connector(tag: str, database: str, into: Path) -> Path:
    """deploy/connect/shop.properties for this test's database, topics, slot and
    publication."""
    text = (DEPLOY / "shop.properties").read_text()
    for old, new in (
        ("database.dbname=postgres", f"database.dbname={database}"),
        ("topic.prefix=shop", f"topic.prefix=cdc-{tag}"),
        ("streamkit_shop", f"streamkit_{tag}"),
        ("shop.events.", f"cdc-{tag}.events."),
        ("shop\\\\.public\\\\.outbox", f"cdc-{tag}\\\\.public\\\\.outbox"),
        ("name=shop-postgres", f"name=cdc-{tag}"),
    ):
        assert old in text, old
        text = text.replace(old, new)
    path = into / f"cdc-{tag}.properties"
    path.write_text(text)
    return path


class Shop:
    """The test's database, and what it did to it."""

    def __init__(self, server: PostgresInfo, database: str) -> None:
        self.dsn = server.dsn.replace("dbname=postgres", f"dbname={database}")
        self.ops: dict[int, list[tuple[str, int | None]]] = defaultdict(list)  # per key
        self.committed: list[str] = []
        self.rolled_back: list[str] = []

    def run(self, sql: str, *args: Any) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as db:
            db.execute(sql, args)  # type: ignore[arg-type]

    def insert(self, pid: int) -> None:
        self.run(
            "INSERT INTO products VALUES (%s, %s, %s, %s, %s)",
            pid,
            f"p{pid}",
            f"c{pid % 3}",
            f"{pid}.50",
            100,
        )
        self.ops[pid].append(("create", 100))

    def restock(self, pid: int, stock: int) -> None:
        self.run("UPDATE products SET stock = %s WHERE id = %s", stock, pid)
        self.ops[pid].append(("update", stock))

    def delete(self, pid: int) -> None:
        self.run("DELETE FROM products WHERE id = %s", pid)
        self.ops[pid] += [("delete", None), ("tombstone", None)]

    def order(self, order_id: str, pid: int, *, commit: bool) -> None:
        """An order and its outbox event, in one transaction."""
        with psycopg.connect(self.dsn) as db:
            db.execute("INSERT INTO orders VALUES (%s, %s, %s)", (order_id, pid, 2))
            payload = {"order_id": order_id, "product_id": pid, "quantity": 2}
            db.execute(
                "INSERT INTO outbox VALUES (%s, 'order', %s, 'OrderPlaced', %s)",
                (uuid.uuid4(), order_id, orjson.dumps(payload).decode()),
            )
            if commit:
                db.commit()
                self.committed.append(order_id)
            else:
                db.rollback()
                self.rolled_back.append(order_id)

    def rows(self) -> dict[str, dict[str, Any]]:
        with psycopg.connect(self.dsn) as db:
            found = db.execute("SELECT id, name, category, price::text, stock FROM products")
            names = [c.name for c in found.description or ()]
            return {str(row[0]): dict(zip(names, row, strict=True)) for row in found}


@pytest.fixture
def shop(postgres: PostgresInfo, kafka_config: dict[str, Any]) -> Iterator[tuple[Shop, str]]:
    tag = uuid.uuid4().hex[:8]
    database = f"cdc_{tag}"
    with psycopg.connect(postgres.dsn, autocommit=True) as db:
        db.execute(f"CREATE DATABASE {database}")  # type: ignore[arg-type]
    made = Shop(postgres, database)
    with psycopg.connect(made.dsn, autocommit=True) as db:
        db.execute((DEPLOY / "shop.sql").read_text().encode())
    yield made, tag
    topics = [
        t
        for t in admin_client(kafka_config).list_topics(timeout=10).topics
        if t.startswith(f"cdc-{tag}") or t.startswith(f"cdc-app-{tag}")
    ]
    delete_topics(admin_client(kafka_config), topics)
    with psycopg.connect(postgres.dsn, autocommit=True) as db:  # the slot keeps WAL: drop it
        db.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
            "WHERE slot_name = %s",
            (f"streamkit_{tag}",),
        )


@pytest.mark.parametrize("eos", [False, True], ids=["at-least-once", "exactly-once"])
def test_changes_read_model_and_outbox_follow_postgres_across_a_kill_9(
    shop: tuple[Shop, str],
    eos: bool,
    kafka_bootstrap: str,
    kafka_config: dict[str, Any],
    kafka_connect: Any,
    postgres: PostgresInfo,
    tmp_path: Path,
) -> None:
    db, tag = shop
    env = {
        **os.environ,
        "STREAMKIT_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "CDC_TAG": tag,
        "CDC_EOS": "1" if eos else "0",
        "STREAMKIT_STATE_DIR": str(tmp_path / "state"),
        "PYTHONPATH": str(ROOT),
        "STREAMKIT_KAFKA_CONSUMER_SESSION_TIMEOUT_MS": "6000",
        "STREAMKIT_KAFKA_PRODUCER_TRANSACTION_TIMEOUT_MS": "15000",
    }
    create_app_topics(APP, env)
    for pid in range(1, 6):  # before the connector: read in its snapshot (op "read")
        db.insert(pid)
        db.ops[pid][-1] = ("read", 100)
    kafka_connect(
        [_connector(tag, f"cdc_{tag}", tmp_path)], {"STREAMKIT_PG_PORT": str(postgres.port)}
    )
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamkit",
                "run",
                APP,
                "--commit-interval",
                "0.3",
                "--restart-backoff",
                "0.2",
            ],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
    ]
    isolation = "read_committed" if eos else "read_uncommitted"

    def view() -> dict[str, Any]:
        latest: dict[str, Any] = {}
        for m in read_all(kafka_config, f"cdc-{tag}.view", isolation=isolation):
            key = (m.key() or b"").decode()
            if m.value() is None:
                latest.pop(key, None)
            else:
                latest[key] = orjson.loads(m.value() or b"null")
        return latest

    def matches() -> bool:
        return view() == db.rows()

    try:
        rng = random.Random(5)
        for pid in range(6, 31):
            db.insert(pid)
        for pid in rng.sample(range(1, 31), 12):
            db.restock(pid, rng.randrange(0, 50))
        for pid in (2, 7, 11):
            db.delete(pid)
        db.order("o1", 1, commit=True)
        db.order("o2", 2, commit=True)  # its product is deleted: no product
        db.order("o-rolled-back", 3, commit=False)
        wait_for(matches, 120, "the read model to equal the products table")
        (worker,) = children_of(processes[0].pid)
        os.kill(worker, signal.SIGKILL)  # the supervisor starts it again; the store restores
        for pid in rng.sample([p for p in range(1, 31) if p not in (2, 7, 11)], 10):
            db.restock(pid, rng.randrange(50, 99))
        db.delete(13)
        db.insert(7)  # a deleted key comes back
        db.order("o3", 4, commit=True)
        db.order("o-rolled-back-2", 4, commit=False)
        wait_for(matches, 120, "the read model to equal the table after the kill")

        seen: dict[int, list[tuple[str, int | None]]] = defaultdict(list)
        for m in read_all(kafka_config, f"cdc-{tag}.seen", isolation=isolation):
            change = orjson.loads(m.value() or b"null")
            assert change["table"] in {"products", None}
            row = change["after"] or change["before"]
            seen[change["key"]].append(
                (change["op"], None if row is None or change["op"] == "delete" else row["stock"])
            )
            if change["op"] == "delete":  # REPLICA IDENTITY FULL: the whole row that went
                assert change["before"]["name"] == f"p{change['key']}"
        for pid, ops in db.ops.items():  # in commit order per key (duplicates at least once)
            got = seen[pid]
            if eos:
                assert got == ops, (pid, got, ops)
            else:
                assert _in_order(got, ops), (pid, got, ops)
                assert set(got) <= set(ops), (pid, got, ops)
                assert got[-1] == ops[-1], (pid, got, ops)

        reserved: dict[str, list[Any]] = defaultdict(list)
        wait_for(
            lambda: _reserved(kafka_config, tag, isolation, reserved) >= {"o1", "o2", "o3"},
            60,
            "a reservation of each committed order",
        )
        assert set(reserved) == set(db.committed)  # nothing of a rolled-back transaction
        for copies in reserved.values():
            assert len(copies) == 1 if eos else len(copies) >= 1
        assert reserved["o1"][0]["product"] == "p1"
        assert reserved["o2"][0]["product"] is None  # its tombstone removed it from the table
    finally:
        stop_all(processes, timeout=60)


def _in_order(got: list[Any], ops: list[Any]) -> bool:
    """``ops`` in ``got`` in their order (a redelivery repeats a stretch at least once)."""
    at = 0
    for item in got:
        if at < len(ops) and item == ops[at]:
            at += 1
    return at == len(ops)


def _reserved(
    config: dict[str, Any], tag: str, isolation: str, into: dict[str, list[Any]]
) -> set[str]:
    into.clear()
    for m in read_all(config, f"cdc-{tag}.reserved", isolation=isolation):
        value = orjson.loads(m.value() or b"null")
        into[value["order_id"]].append(value)
    return set(into)
