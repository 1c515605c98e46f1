"""The orders example against a broker that demands TLS, SCRAM and ACLs (the secured local
broker): it runs end to end with only the ACLs ``streamkit acl plan`` gives it; without any
one of them, with a wrong password or an untrusted CA, it stops within seconds with one
line naming the cause; its user's password appears in no output."""

import contextlib
import datetime as dt
import importlib.util
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from processors import generator
from processors.orders import VALIDATED, app
from streamkit.ops.acl import create_acls, delete_acls, plan, set_scram_user
from streamkit.ops.client import AppClient
from streamkit.ops.local_broker import free_port
from streamkit.ops.secure_broker import secure_files
from streamkit.settings import Settings
from streamkit.testing.brokers import SecureTestBroker
from tests.integration.helpers import ROOT, create_app_topics, read_all, stop

SENTINEL = "sentinel-Pa55-word-7c1f"
PRINCIPAL = "User:orders"


@pytest.fixture(scope="module")
def orders(secure_kafka: SecureTestBroker) -> dict[str, str]:
    """The orders app's topics (created by the admin), its user with the sentinel password
    and its planned ACLs; the environment of a process logged in as that user."""
    create_app_topics("processors.orders", {**os.environ, **secure_kafka.env()})
    admin = AdminClient(secure_kafka.config())
    set_scram_user(admin, "orders", SENTINEL)
    create_acls(admin, plan(app, PRINCIPAL))
    return {**os.environ, **secure_kafka.env("orders", SENTINEL)}


def _run(env: dict[str, str], timeout: float = 45) -> subprocess.CompletedProcess[str]:
    """``streamkit run processors.orders`` expected to stop by itself."""
    return subprocess.run(
        [sys.executable, "-m", "streamkit", "run", "processors.orders"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_the_orders_example_runs_over_sasl_ssl_with_only_its_planned_acls(
    secure_kafka: SecureTestBroker, orders: dict[str, str]
) -> None:
    admin = Settings.from_env(secure_kafka.env())
    with AppClient(app, admin) as client:
        for order in generator.orders(40, seed=11):
            client.send("orders.placed", order, key=order["order_id"])
        assert client.flush() == 40
    producer = Producer(secure_kafka.config())
    producer.produce("orders.placed", b"\xff not an order", b"poison")  # to the dead letters
    assert producer.flush(30) == 0
    port = free_port()
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamkit",
            "run",
            "processors.orders",
            "--log-level",
            "debug",
            "--http-port",
            str(port),
        ],
        env=orders,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        with AppClient(app, admin) as client:
            deadline = time.monotonic() + 60
            validated: list[object] = []
            while time.monotonic() < deadline and len(validated) < 36:
                validated = client.read(VALIDATED.name, stall=2)
            rejected = client.read("orders.rejected", stall=2)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as page:
            metrics = page.read().decode()
    finally:
        code, err = stop(worker)
    assert len(validated) == 36, err[-2000:]  # every 10th order has no lines: rejected
    assert len(rejected) == 4
    assert code == 0, err[-2000:]
    (letter,) = read_all(secure_kafka.config(), "orders-orders.placed-dlq")
    assert letter.value() == b"\xff not an order"
    assert "streamkit_" in metrics
    exposed = [err, metrics, *(f"{k}={v!r}" for k, v in letter.headers() or [])]
    assert not [text for text in exposed if SENTINEL in text]


def test_each_missing_acl_stops_the_app_within_seconds_naming_it(
    secure_kafka: SecureTestBroker, orders: dict[str, str]
) -> None:
    admin = AdminClient(secure_kafka.config())
    for acl in plan(app, PRINCIPAL):
        delete_acls(admin, [acl])
        try:
            began = time.monotonic()
            done = _run(orders)
            took = time.monotonic() - began
        finally:
            create_acls(admin, [acl])
        assert done.returncode == 2, (str(acl), done.stderr[-1500:])
        assert f"may not {acl.permission}" in done.stderr, (str(acl), done.stderr[-1500:])
        assert took < 20, (str(acl), took)
        assert SENTINEL not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"STREAMKIT_KAFKA_SASL_PASSWORD": "not-" + SENTINEL}, "SASL authentication error"),
        (
            {"STREAMKIT_KAFKA_SSL_CA_LOCATION": "/etc/ssl/certs/ca-certificates.crt"},
            "TLS refused: the broker's certificate does not verify: self-signed certificate "
            "in certificate chain (trusting /etc/ssl/certs/ca-certificates.crt)",
        ),
    ],
    ids=["wrong-password", "untrusted-ca"],
)
def test_a_wrong_password_or_an_untrusted_ca_gives_one_clear_line(
    orders: dict[str, str], change: dict[str, str], expected: str
) -> None:
    began = time.monotonic()
    done = _run({**orders, **change})
    assert time.monotonic() - began < 15
    assert done.returncode == 2
    (line,) = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert line.startswith("error: cannot connect to Kafka at 127.0.0.1:"), line
    assert expected in line
    assert SENTINEL not in done.stdout + done.stderr


def test_exactly_once_needs_its_transactional_ids_and_says_so(
    secure_kafka: SecureTestBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        "TOTALS_EOS": "1",
        "TOTALS_GROUP": "totals-eos",
        "TOTALS_INPUT": "eos-in",
        "TOTALS_OUTPUT": "eos-out",
    }
    create_app_topics("tests.integration.apps.totals", {**os.environ, **env, **secure_kafka.env()})
    admin = AdminClient(secure_kafka.config())
    set_scram_user(admin, "totals", SENTINEL)
    for name, value in env.items():  # the app reads them on import: a copy of its own
        monkeypatch.setenv(name, value)
    source = ROOT / "tests" / "integration" / "apps" / "totals.py"
    spec = importlib.util.spec_from_file_location("totals_eos", source)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    totals_app = module.app
    acls = plan(totals_app, "User:totals")
    assert any(a.permission.resource == "transactional-id" for a in acls)
    create_acls(admin, acls)
    user = {**os.environ, **env, **secure_kafka.env("totals", SENTINEL)}
    command = [sys.executable, "-m", "streamkit", "run", "tests.integration.apps.totals"]
    for acl in [a for a in acls if a.permission.resource != "topic"]:
        delete_acls(admin, [acl])
        try:
            done = subprocess.run(
                command, env=user, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
            )
        finally:
            create_acls(admin, [acl])
        assert done.returncode == 2, (str(acl), done.stderr[-1500:])
        assert f"may not {acl.permission}" in done.stderr, (str(acl), done.stderr[-1500:])
    # The operator reads state from the changelog over TLS too (no state yet: exit 3).
    state = subprocess.run(
        [
            sys.executable,
            "-m",
            "streamkit",
            "state",
            "get",
            "--app",
            "tests.integration.apps.totals",
            "totals",
            "c-1",
        ],
        env={**os.environ, **env, **secure_kafka.env()},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert state.returncode == 3, state.stderr[-1500:]
    assert "c-1" in state.stderr + state.stdout


COMMANDS = [
    ["topics", "list", "--app", "processors.orders"],
    ["topics", "describe", "--app", "processors.orders"],
    ["status", "--app", "processors.orders", "--once"],
    ["dlq", "list", "--app", "processors.orders"],
    ["replay", "reset", "--app", "processors.orders", "--to-datetime", "2026-01-01T00:00:00Z"],
    [
        "consume",
        "orders.placed",
        "--schema",
        "OrderPlaced",
        "--from-beginning",
        "--max",
        "1",
        "--timeout",
        "10",
    ],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_operator_commands_work_against_the_secured_broker(
    secure_kafka: SecureTestBroker, orders: dict[str, str], command: list[str]
) -> None:
    if command[0] == "consume":  # something to read, whichever tests ran before
        with AppClient(app, Settings.from_env(secure_kafka.env())) as client:
            order = next(generator.orders(1, seed=99))
            client.send("orders.placed", order, key=order["order_id"])
            assert client.flush() == 1
    done = subprocess.run(
        [sys.executable, "-m", "streamkit", *command],
        env={**os.environ, **secure_kafka.env()},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-1500:]
    assert done.stdout.strip()
    assert secure_kafka.files.password() not in done.stdout + done.stderr


def test_an_expired_broker_certificate_gives_one_clear_line(tmp_path: Path) -> None:
    """The TLS handshake is refused before Kafka speaks, so a TLS server with the expired
    certificate stands in for the broker."""
    files = secure_files(tmp_path, valid_until=dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.broker_pem)
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = server.accept()
                with (
                    contextlib.suppress(OSError, ssl.SSLError),
                    context.wrap_socket(conn, server_side=True),
                ):
                    pass

    threading.Thread(target=serve, daemon=True).start()
    env = {**os.environ, **files.environment(f"127.0.0.1:{port}")}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "streamkit", "topics", "list", "--app", "processors.orders"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    finally:
        server.close()
    assert done.returncode == 2, done.stderr
    (line,) = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert line.endswith(
        "TLS refused: the broker's certificate does not verify: certificate has expired "
        f"(trusting {files.ca})"
    ), line
