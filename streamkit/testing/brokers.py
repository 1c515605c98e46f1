"""Choosing the Kafka broker for tests, in one place.

Order: ``STREAMKIT_BOOTSTRAP_SERVERS`` when set; else a testcontainers container of the
``apache/kafka`` image when a Docker engine answers (``STREAMKIT_TEST_KAFKA_IMAGE`` overrides
the image); else the local broker from Maven jars. ``STREAMKIT_TEST_BROKER=local|docker``
forces one of the last two.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamkit.errors import BrokerError, StreamkitError
from streamkit.ops._local_process import free_ports
from streamkit.ops.local_broker import LocalBroker, LocalBrokerConfig, admin_answers, free_port
from streamkit.ops.local_cluster import LocalCluster
from streamkit.ops.secure_broker import ADMIN, SecureFiles
from streamkit.settings import Settings

__all__ = [
    "DEFAULT_KAFKA_IMAGE",
    "SecureTestBroker",
    "TestBroker",
    "docker_engine_answers",
    "start_secure_broker",
    "start_test_broker",
]

DEFAULT_KAFKA_IMAGE = "apache/kafka:4.3.1"


@dataclass
class TestBroker:
    """A broker a test session uses: where it is, what it is, and how to let it go."""

    __test__ = False  # not a pytest test class

    bootstrap_servers: str
    kind: str
    stop: Callable[[], None] = field(default=lambda: None)
    files: SecureFiles | None = None  # a secured broker's CA and passwords


_engine_answered: bool | None = None


def docker_engine_answers(timeout: float = 10.0, attempts: int = 3) -> bool:
    """True when a Docker engine answers a ping (the docker SDK is installed and reachable).

    A busy engine gets a few tries; a positive answer is remembered for the process.
    """
    global _engine_answered  # noqa: PLW0603 - a per-process memo of a slow probe
    if _engine_answered:
        return True
    try:
        import docker  # noqa: PLC0415 - optional dependency, only needed here
    except ImportError:
        return False
    for attempt in range(attempts):
        try:
            client = docker.from_env(timeout=timeout)
            try:
                if client.ping():
                    _engine_answered = True
                    return True
            finally:
                client.close()
        except Exception:  # noqa: BLE001 - any failure means "not now"
            if attempt + 1 < attempts:
                time.sleep(1)
    return False


def kafka_container_env(port: int) -> dict[str, str]:
    """``apache/kafka`` KRaft settings for one node advertising ``127.0.0.1:port``."""
    return {
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_LISTENERS": f"PLAINTEXT://:{port},CONTROLLER://:9093",
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://127.0.0.1:{port}",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR": "1",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
        "KAFKA_HEAP_OPTS": "-Xms256m -Xmx512m",
    }


def _wait_for(bootstrap: str, timeout: float, alive: Callable[[], bool]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if admin_answers(bootstrap):
            return
        if not alive():
            raise BrokerError(f"Kafka at {bootstrap} exited before it answered")
        time.sleep(0.3)
    raise BrokerError(f"Kafka at {bootstrap} did not answer within {timeout:.0f}s")


def _container_broker(image: str) -> TestBroker:
    from testcontainers.core.container import DockerContainer  # noqa: PLC0415

    port = free_port()
    container = DockerContainer(image)
    for key, value in kafka_container_env(port).items():
        container.with_env(key, value)
    container.with_bind_ports(port, port)
    container.start()
    bootstrap = f"127.0.0.1:{port}"

    def alive() -> bool:
        wrapped = container.get_wrapped_container()
        wrapped.reload()
        return bool(wrapped.status in {"created", "running"})

    try:
        _wait_for(bootstrap, 120, alive)
    except BaseException:
        container.stop()
        raise
    return TestBroker(bootstrap, f"container {image}", container.stop)


def _local_broker(settings: Settings, *, secure: bool = False) -> TestBroker:
    data_dir = Path(tempfile.mkdtemp(prefix="streamkit-test-broker-"))
    local = LocalBroker(
        LocalBrokerConfig(
            data_dir=data_dir,
            cache_dir=settings.cache_dir,
            port=free_port(),
            java_home=settings.java_home,
            secure=secure,
        )
    )
    try:
        state = local.start(timeout=120)
    except BaseException:
        shutil.rmtree(data_dir, ignore_errors=True)
        raise

    def stop() -> None:
        try:
            local.stop()
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)

    kind = f"{'secured ' if secure else ''}local broker pid {state.pid}"
    return TestBroker(state.bootstrap_servers, kind, stop, local.config.secure_files)


@dataclass
class SecureTestBroker:
    """The secured local broker of a test session (see
    :mod:`streamkit.ops.secure_broker`): SASL_SSL, SCRAM users, ACLs enforced."""

    __test__ = False

    broker: TestBroker

    @property
    def files(self) -> SecureFiles:
        """Its CA and passwords."""
        assert self.broker.files is not None  # noqa: S101 - a secured broker has them
        return self.broker.files

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` of its SASL_SSL listener."""
        return self.broker.bootstrap_servers

    def config(self, user: str = ADMIN, password: str | None = None) -> dict[str, Any]:
        """A librdkafka config of a client logged in as ``user`` (default: the admin)."""
        return {
            "bootstrap.servers": self.bootstrap_servers,
            **self.files.client_config(user, password),
        }

    def env(self, user: str = ADMIN, password: str | None = None) -> dict[str, str]:
        """The ``STREAMKIT_*`` variables of a process logged in as ``user``."""
        env = self.files.environment(self.bootstrap_servers)
        env["STREAMKIT_KAFKA_SASL_USERNAME"] = user
        if password is not None:
            del env["STREAMKIT_KAFKA_SASL_PASSWORD_FILE"]
            env["STREAMKIT_KAFKA_SASL_PASSWORD"] = password
        return env

    def user(self, name: str) -> str:
        """Create the SCRAM user ``name`` with a random password; return the password."""
        from confluent_kafka.admin import AdminClient  # noqa: PLC0415

        from streamkit.ops.acl import set_scram_user  # noqa: PLC0415

        password = secrets.token_urlsafe(16)
        set_scram_user(AdminClient(self.config()), name, password)
        return password


def start_secure_broker(environ: Mapping[str, str] | None = None) -> SecureTestBroker:
    """Start a secured local broker in a temporary directory (stop it with
    ``.broker.stop()``); raise BrokerError when it cannot start."""
    settings = Settings.from_env(os.environ if environ is None else environ)
    return SecureTestBroker(_local_broker(settings, secure=True))


def start_test_broker(environ: Mapping[str, str] | None = None) -> TestBroker:
    """Find or start the broker for a test session; raise BrokerError when none can be had."""
    env = os.environ if environ is None else environ
    settings = Settings.from_env(env)
    if env.get("STREAMKIT_BOOTSTRAP_SERVERS", "").strip():
        bootstrap = settings.bootstrap_servers
        if not admin_answers(bootstrap.split(",")[0], timeout=10):
            raise BrokerError(f"STREAMKIT_BOOTSTRAP_SERVERS={bootstrap} does not answer")
        return TestBroker(bootstrap, "STREAMKIT_BOOTSTRAP_SERVERS")
    forced = env.get("STREAMKIT_TEST_BROKER", "").strip().lower()
    if forced not in {"", "local", "docker"}:
        raise BrokerError(f"STREAMKIT_TEST_BROKER={forced!r}: expected local or docker")
    if forced == "docker" or (not forced and docker_engine_answers()):
        image = env.get("STREAMKIT_TEST_KAFKA_IMAGE", "").strip() or DEFAULT_KAFKA_IMAGE
        try:
            return _container_broker(image)
        except StreamkitError:
            raise
        except Exception as exc:
            raise BrokerError(f"cannot start the Kafka container {image}: {exc}") from exc
    return _local_broker(settings)


@dataclass
class ClusterTestBroker:
    """A local cluster of a test session (see :mod:`streamkit.ops.local_cluster`): three
    KRaft nodes, replication factor 3, ``min.insync.replicas`` 2. A test that kills a node
    starts it again before it ends."""

    __test__ = False

    cluster: LocalCluster

    @property
    def bootstrap_servers(self) -> str:
        """Every node's ``host:port``."""
        return self.cluster.bootstrap_servers

    def kill(self, node: int) -> int:
        """SIGKILL node ``node`` (1-based); its pid."""
        return self.cluster.kill(node)

    def restart(self, node: int) -> None:
        """Start node ``node`` again and wait until it answers."""
        self.cluster.start_node(node)

    def node_of_port(self, port: int) -> int:
        """The node listening on ``port``."""
        layout = self.cluster.layout()
        assert layout is not None  # noqa: S101 - started
        return layout.ports.index(port) + 1

    def stop(self) -> None:
        """Stop every node and remove the cluster's data."""
        try:
            self.cluster.stop()
        finally:
            shutil.rmtree(self.cluster.data_dir, ignore_errors=True)


def start_test_cluster(
    environ: Mapping[str, str] | None = None, nodes: int = 3
) -> ClusterTestBroker:
    """Start a local cluster of ``nodes`` in a temporary directory on free ports; raise
    BrokerError when it cannot start."""
    settings = Settings.from_env(os.environ if environ is None else environ)
    data_dir = Path(tempfile.mkdtemp(prefix="streamkit-test-cluster-"))
    base = free_ports(nodes)  # below the ephemeral range: a killed node can bind again
    cluster = LocalCluster(
        data_dir, settings.cache_dir, nodes=nodes, port=base, java_home=settings.java_home
    )
    try:
        cluster.start(timeout=180)
    except BaseException:
        shutil.rmtree(data_dir, ignore_errors=True)
        raise
    return ClusterTestBroker(cluster)


def client_config(bootstrap: str, **overrides: Any) -> dict[str, Any]:
    """A librdkafka config for tests: the chosen broker plus any ``STREAMKIT_KAFKA_*``."""
    return Settings.from_env().client_config(**{"bootstrap.servers": bootstrap, **overrides})
