"""How a local broker node is configured: its ports, data, heap, security, and its place
in a cluster (node id, quorum voters, replication), rendered as ``server.properties``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from streamkit.ops.secure_broker import SecureFiles, secure_files

__all__ = ["LocalBrokerConfig", "render_properties"]


@dataclass(frozen=True)
class LocalBrokerConfig:
    """How to run the local broker.

    Attributes:
        data_dir: log segments, metadata, the broker log and the state file.
        cache_dir: where the broker's jars are cached (see ``Settings.cache_dir``).
        port: the client (PLAINTEXT) port on 127.0.0.1.
        controller_port: the KRaft controller port; 0 picks a free one at start.
        heap: JVM heap, as in ``-Xmx``.
        java_home: run ``$JAVA_HOME/bin/java`` instead of ``java`` on PATH.
        extra: further ``server.properties`` entries, overriding the defaults.
        secure: TLS, SCRAM users and ACLs (see :mod:`streamkit.ops.secure_broker`).
        node_id: this node's id in its KRaft quorum.
        voters: the quorum, ``id@host:port,...`` (empty: this node alone).
        replication: replicas of every topic and internal topic (3 in a cluster of
            three), with ``min.insync.replicas`` one less (at least 1).
        cluster_id: the id the storage is formatted with (empty: a random one); the
            nodes of one cluster share it.
        host: the only interface it listens on and the address it advertises (127.0.0.1;
            a test of many hosts gives the address of a bridge it made).
    """

    data_dir: Path
    cache_dir: Path
    port: int = 9092
    controller_port: int = 0
    heap: str = "512m"
    java_home: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    secure: bool = False
    node_id: int = 1
    voters: str = ""
    replication: int = 1
    cluster_id: str = ""
    host: str = "127.0.0.1"

    @property
    def secure_files(self) -> SecureFiles | None:
        """The secured broker's CA, certificate and passwords (made on first use)."""
        return secure_files(self.data_dir / "secure") if self.secure else None


def render_properties(config: LocalBrokerConfig, controller_port: int) -> str:
    """The broker's ``server.properties`` for ``config`` (secrets included when secure)."""
    host, port = config.host, config.port
    node = config.node_id
    replicas, in_sync = str(config.replication), str(max(1, config.replication - 1))
    props: dict[str, str] = {
        "process.roles": "broker,controller",
        "node.id": str(node),
        "controller.quorum.voters": config.voters or f"{node}@{host}:{controller_port}",
        "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{host}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(config.data_dir / "kraft-logs"),
        "num.partitions": "1",
        "default.replication.factor": replicas,
        "min.insync.replicas": in_sync,
        "offsets.topic.replication.factor": replicas,
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": in_sync,
        "transaction.state.log.num.partitions": "1",
        "share.coordinator.state.topic.replication.factor": replicas,
        "share.coordinator.state.topic.min.isr": in_sync,
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
        "log.cleaner.dedupe.buffer.size": "2097152",
        "log.cleaner.backoff.ms": "1000",
        "log.retention.check.interval.ms": "10000",
    }
    files = config.secure_files
    if files is not None:
        props.update(files.broker_properties(host, port, controller_port))
    props.update(config.extra)
    return "".join(f"{key}={value}\n" for key, value in props.items())
