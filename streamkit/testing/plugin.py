"""The streamkit pytest plugin (registered through the ``pytest11`` entry point).

Fixtures:
    kafka_bootstrap: session-wide ``host:port`` of a real broker (see
        :mod:`streamkit.testing.brokers` for how it is chosen). With ``CI=true`` a test
        that needs a broker fails when none can be had; elsewhere it is skipped.
    kafka_config: a librdkafka configuration dict for that broker.
    topic_factory: creates uniquely named topics and deletes them after the test.
    app_client: ``app_client(app)`` gives an :class:`~streamkit.AppClient` on that broker,
        to create an app's topics, send its events and read them back, decoded.
    secure_kafka: a session-wide secured local broker (SASL_SSL, SCRAM users, ACLs
        enforced), as a :class:`~streamkit.testing.brokers.SecureTestBroker`: ``config()``
        and ``env()`` of the admin or any user, ``user(name)`` to create one.
    kafka_cluster: a session-wide local cluster of three nodes (replication factor 3,
        ``min.insync.replicas`` 2), as a :class:`~streamkit.testing.brokers.ClusterTestBroker`
        with ``kill(node)`` and ``restart(node)`` for failover tests.
    postgres: a session-wide local PostgreSQL (``wal_level=logical``), as a
        :class:`~streamkit.ops.local_postgres.PostgresInfo` (``dsn``, ``port``).
    kafka_connect: ``kafka_connect([connector files], env)`` starts a Kafka Connect worker
        with Debezium on the test broker and waits until its connectors run; stopped
        after the test.

Markers: ``kafka`` (needs the broker) and ``docker`` (needs a Docker engine: skipped
without one, failed under ``CI=true``).

What these fixtures start dies with the test process, also when it is killed or aborts
(see :mod:`streamkit.testing._reaper`).
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from streamkit.errors import StreamkitError
from streamkit.testing._reaper import watch

if TYPE_CHECKING:
    from streamkit.app import App
    from streamkit.ops.client import AppClient
    from streamkit.ops.local_connect import ConnectInfo
    from streamkit.ops.local_postgres import PostgresInfo
    from streamkit.testing.brokers import ClusterTestBroker, SecureTestBroker

TopicFactory = Callable[..., str]
_T = TypeVar("_T")
AppClientFactory = Callable[["App"], "AppClient"]


def pytest_configure(config: pytest.Config) -> None:
    """Register the plugin's markers (so ``--strict-markers`` accepts them anywhere)."""
    config.addinivalue_line("markers", "kafka: needs a real Kafka broker (kafka_bootstrap)")
    config.addinivalue_line("markers", "docker: needs a Docker engine (skipped without one)")


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Tests marked ``docker`` need an engine: skipped without one (failed under CI=true)."""
    if item.get_closest_marker("docker") is None:
        return
    from streamkit.testing.brokers import docker_engine_answers  # noqa: PLC0415

    if not docker_engine_answers():
        reason = "no Docker engine answers"
        if _in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


def _needed(start: Callable[[], _T], what: str) -> _T:
    """``start()``; when it cannot, the test fails under ``CI=true`` and is skipped
    elsewhere."""
    try:
        return start()
    except StreamkitError as exc:
        reason = f"no {what} for the tests: {exc}"
        if _in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """``host:port`` of a real Kafka broker for the whole test session."""
    watch()
    from streamkit.testing.brokers import start_test_broker  # noqa: PLC0415

    broker = _needed(start_test_broker, "Kafka broker")
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_cluster() -> Iterator[ClusterTestBroker]:
    """A local cluster of three KRaft nodes for the whole test session: topics replicated
    three times, ``min.insync.replicas`` 2 (see :mod:`streamkit.ops.local_cluster`)."""
    watch()
    from streamkit.testing.brokers import start_test_cluster  # noqa: PLC0415

    cluster = _needed(start_test_cluster, "local Kafka cluster")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def secure_kafka() -> Iterator[SecureTestBroker]:
    """A secured local broker for the whole test session (see the module docstring)."""
    watch()
    from streamkit.testing.brokers import start_secure_broker  # noqa: PLC0415

    secure = _needed(start_secure_broker, "secured Kafka broker")
    try:
        yield secure
    finally:
        secure.broker.stop()


@pytest.fixture(scope="session")
def kafka_config(kafka_bootstrap: str) -> dict[str, Any]:
    """A librdkafka configuration for :func:`kafka_bootstrap` (``STREAMKIT_KAFKA_*`` applied)."""
    from streamkit.testing.brokers import client_config  # noqa: PLC0415

    return client_config(kafka_bootstrap)


@pytest.fixture
def topic_factory(kafka_config: dict[str, Any]) -> Iterator[TopicFactory]:
    """Create uniquely named topics: ``topic_factory(partitions=1, config=None, prefix="t")``.

    Every topic it made is deleted when the test ends, passed or failed.
    """
    from streamkit.ops.admin import (  # noqa: PLC0415
        TopicSpec,
        admin_client,
        create_topics,
        delete_topics,
    )

    admin = admin_client(kafka_config)
    made: list[str] = []

    def make(
        partitions: int = 1, config: Mapping[str, str] | None = None, prefix: str = "t"
    ) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        create_topics(admin, [TopicSpec(name, partitions, 1, dict(config or {}))])
        made.append(name)
        return name

    try:
        yield make
    finally:
        delete_topics(admin, made)


@pytest.fixture
def app_client(kafka_bootstrap: str) -> Iterator[AppClientFactory]:
    """``app_client(app)``: an :class:`~streamkit.AppClient` for ``app`` on the test broker
    (``STREAMKIT_KAFKA_*`` applied), closed when the test ends."""
    from streamkit.ops.client import AppClient  # noqa: PLC0415
    from streamkit.settings import Settings  # noqa: PLC0415

    settings = dataclasses.replace(Settings.from_env(), bootstrap_servers=kafka_bootstrap)
    made: list[AppClient] = []

    def make(app: App) -> AppClient:
        client = AppClient(app, settings)
        made.append(client)
        return client

    try:
        yield make
    finally:
        for client in made:
            client.close()


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresInfo]:
    """A local PostgreSQL for the whole test session (see the module docstring)."""
    watch()
    from streamkit.ops._local_process import free_port  # noqa: PLC0415
    from streamkit.ops.local_postgres import LocalPostgres  # noqa: PLC0415

    server = LocalPostgres(tmp_path_factory.mktemp("postgres"), free_port())
    info = _needed(server.start, "PostgreSQL")
    yield info
    server.destroy()


@pytest.fixture
def kafka_connect(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., ConnectInfo]]:
    from streamkit.ops._local_process import free_port  # noqa: PLC0415
    from streamkit.ops.local_connect import LocalConnect  # noqa: PLC0415
    from streamkit.settings import Settings  # noqa: PLC0415

    started: list[LocalConnect] = []

    def start(connectors: list[Any], env: Mapping[str, str] | None = None) -> ConnectInfo:
        worker = LocalConnect(
            tmp_path_factory.mktemp("connect"), Settings.from_env().cache_dir, free_port()
        )
        started.append(worker)
        return _needed(
            lambda: worker.start(kafka_bootstrap, list(connectors), dict(env or {})),
            "Kafka Connect",
        )

    yield start
    for worker in started:
        worker.stop()
