"""The orders example against a broker that demands TLS, SCRAM and ACLs (the secured local
broker): it runs end to end with only the ACLs ``streamkit acl plan`` gives it; without any
one of them, with a wrong password or an untrusted CA, it stops within seconds with one
line naming the cause; its user's password appears in no output."""

import os
import subprocess
import sys
import time

import pytest
from confluent_kafka.admin import AdminClient

from processors import generator
from processors.orders import VALIDATED, app
from streamkit.ops.acl import create_acls, delete_acls, plan, set_scram_user
from streamkit.ops.client import AppClient
from streamkit.settings import Settings
from streamkit.testing.brokers import SecureTestBroker
from tests.integration.helpers import ROOT, create_app_topics, stop

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
        [sys.executable, "-m", "streamkit", "run", "processors.orders"], env=env, cwd=ROOT,
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def test_the_orders_example_runs_over_sasl_ssl_with_only_its_planned_acls(
    secure_kafka: SecureTestBroker, orders: dict[str, str]
) -> None:
    admin = Settings.from_env(secure_kafka.env())
    with AppClient(app, admin) as client:
        for order in generator.orders(40, seed=11):
            client.send("orders.placed", order, key=order["order_id"])
        assert client.flush() == 40
    worker = subprocess.Popen(
        [sys.executable, "-m", "streamkit", "run", "processors.orders", "--log-level", "debug"],
        env=orders, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        with AppClient(app, admin) as client:
            deadline = time.monotonic() + 60
            validated: list[object] = []
            while time.monotonic() < deadline and len(validated) < 36:
                validated = client.read(VALIDATED.name, stall=2)
            rejected = client.read("orders.rejected", stall=2)
    finally:
        code, err = stop(worker)
    assert len(validated) == 36, err[-2000:]  # every 10th order has no lines: rejected
    assert len(rejected) == 4
    assert code == 0, err[-2000:]
    assert SENTINEL not in err


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
            "TLS refused: SSL handshake failed",
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
