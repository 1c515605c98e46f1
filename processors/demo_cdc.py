"""`make demo-cdc`: a read model and outbox events following a PostgreSQL database.

Starts a local PostgreSQL (``streamkit postgres start``, the tables of
``deploy/connect/shop.sql``), a Kafka Connect worker with Debezium
(``streamkit connect start deploy/connect/shop.properties``) and
``streamkit run processors.inventory``; then inserts, updates and deletes products and
places orders through the outbox (one rolled back), showing after each step what the app
made of it: the catalog (the read model), the cache invalidations and the reservations.
Ends by comparing the catalog with ``SELECT * FROM products``. Everything it started is
stopped, and its database removed, when it ends. Uses ``STREAMKIT_BOOTSTRAP_SERVERS``
(the Makefile starts a local broker for it).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from processors.inventory import CATALOG, INVALIDATIONS, RESERVATIONS, app
from streamkit import AppClient

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / ".streamkit" / "demo-cdc"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _streamkit(*args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "streamkit", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"streamkit {args[0]} {args[1]} failed: {done.stderr.strip()}")
    return done.stdout.strip()


class Shop:
    """The demo's database."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    def run(self, *statements: str) -> None:
        with psycopg.connect(self.dsn) as db:  # one transaction
            for statement in statements:
                db.execute(statement.encode())

    def order(self, order_id: str, product: int, quantity: int, *, commit: bool) -> None:
        """The order and its outbox event in one transaction (committed or rolled back)."""
        payload = json.dumps({"order_id": order_id, "product_id": product, "quantity": quantity})
        with psycopg.connect(self.dsn) as db:
            db.execute("INSERT INTO orders VALUES (%s, %s, %s)", (order_id, product, quantity))
            db.execute(
                "INSERT INTO outbox VALUES (%s, 'order', %s, 'OrderPlaced', %s)",
                (uuid.uuid4(), order_id, payload),
            )
            if commit:
                db.commit()
            else:
                db.rollback()

    def products(self) -> dict[str, dict[str, Any]]:
        with psycopg.connect(self.dsn) as db:
            cursor = db.execute("SELECT id, name, category, price::text, stock FROM products")
            names = [c.name for c in cursor.description or ()]
            return {str(row[0]): dict(zip(names, row, strict=True)) for row in cursor}


class Since:
    """What the app wrote since the demo began (a broker may hold an earlier run's)."""

    def __init__(self, client: AppClient) -> None:
        self.client = client
        self.start = client.end_offsets(CATALOG.name, INVALIDATIONS.name, RESERVATIONS.name)

    def read(self, topic: str) -> list[Any]:
        return [
            e
            for e in self.client.read(topic)
            if e.offset >= self.start.get((topic, e.partition), 0)
        ]


def _catalog(client: Since) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for event in client.read(CATALOG.name):
        if event.value is None:
            latest.pop(str(event.key), None)
        else:
            latest[str(event.key)] = {k: v for k, v in event.value.items() if k != "lsn"}
    return latest


def _until(what: str, check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"demo-cdc: {what} did not happen within {timeout:.0f}s")
        time.sleep(0.3)


def _show(client: Since) -> None:
    rows = [f"{k} {v['name']} (stock {v['stock']})" for k, v in sorted(_catalog(client).items())]
    print(f"  catalog:      {'; '.join(rows) or 'empty'}")
    seen = [f"{e.value['key']} ({e.value['op']})" for e in client.read(INVALIDATIONS.name)]
    print(f"  invalidated:  {', '.join(seen) or 'nothing'}")
    made = [
        f"{e.value['order_id']} ({e.value['product']} x{e.value['quantity']})"
        for e in client.read(RESERVATIONS.name)
    ]
    print(f"  reservations: {', '.join(made) or 'none'}")


def main() -> None:
    """Run the demo (see the module docstring)."""
    pg_dir, connect_dir = STATE / "postgres", STATE / "connect"
    pg_port, rest_port = _free_port(), _free_port()
    env = {**os.environ, "STREAMKIT_STATE_DIR": str(STATE / "app")}
    worker: subprocess.Popen[bytes] | None = None
    _stop(pg_dir, connect_dir)  # what an interrupted run left
    shutil.rmtree(STATE, ignore_errors=True)
    try:
        print(
            _streamkit(
                "postgres",
                "start",
                "--data-dir",
                str(pg_dir),
                "--port",
                str(pg_port),
                "--sql",
                "deploy/connect/shop.sql",
            )
        )
        shop = Shop(f"host=127.0.0.1 port={pg_port} user=postgres dbname=postgres")
        with AppClient(app) as app_client:
            app_client.create_topics()
            client = Since(app_client)
            print(
                _streamkit(
                    "connect",
                    "start",
                    "--data-dir",
                    str(connect_dir),
                    "--rest-port",
                    str(rest_port),
                    "--postgres-dir",
                    str(pg_dir),
                    "deploy/connect/shop.properties",
                )
            )
            worker = subprocess.Popen(
                [sys.executable, "-m", "streamkit", "run", "processors.inventory"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

            print("\n1. insert three products")
            shop.run(
                "INSERT INTO products VALUES (1, 'kettle', 'kitchen', 29.90, 10), "
                "(2, 'mug', 'kitchen', 5.50, 100), (3, 'lamp', 'living', 40.00, 3)"
            )
            _until("the catalog of three", lambda: len(_catalog(client)) == 3, 120)
            _show(client)

            print("\n2. sell a kettle (update), stop selling lamps (delete)")
            shop.run(
                "UPDATE products SET stock = 9 WHERE id = 1", "DELETE FROM products WHERE id = 3"
            )
            _until("the update and the delete", lambda: _catalog(client) == shop.products())
            _show(client)

            print("\n3. order o-1 (committed with its outbox event); order o-2 rolled back")
            shop.order("o-1", 1, 2, commit=True)
            shop.order("o-2", 2, 1, commit=False)
            _until("the reservation", lambda: bool(client.read(RESERVATIONS.name)))
            _show(client)

            same = _catalog(client) == shop.products()
            verdict = "yes" if same else "NO"
            print(f"\nthe catalog equals the products table: {verdict}")
            orders = [e.value["order_id"] for e in client.read(RESERVATIONS.name)]
            print(f"reservations: {orders} (o-2 was rolled back: no event)")
            if not same or orders != ["o-1"]:
                raise SystemExit(1)
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(60)
        _stop(pg_dir, connect_dir)


def _stop(pg_dir: Path, connect_dir: Path) -> None:
    """Stop Kafka Connect and PostgreSQL, and remove the database."""
    for args in (
        ["connect", "stop", "--data-dir", str(connect_dir)],
        ["postgres", "stop", "--remove", "--data-dir", str(pg_dir)],
    ):
        subprocess.run(
            [sys.executable, "-m", "streamkit", *args],
            cwd=ROOT,
            capture_output=True,
            check=False,
            timeout=120,
        )


if __name__ == "__main__":
    main()
