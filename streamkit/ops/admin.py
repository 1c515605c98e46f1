"""Topic administration through confluent-kafka's AdminClient, errors translated."""

from __future__ import annotations

import re
import socket
import ssl
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import ConfigResource
from confluent_kafka.admin._resource import ResourceType
from confluent_kafka.cimpl import NewTopic

from streamkit.errors import KafkaOperationError, KafkaUnreachableError
from streamkit.settings import Settings
from streamkit.topic import CLUSTER_DEFAULT

__all__ = [
    "TopicSpec",
    "admin_client",
    "cleanup_policies",
    "create_topics",
    "delete_topics",
    "describe_topics",
    "ensure_reachable",
    "wait_for_leaders",
]


@dataclass(frozen=True)
class TopicSpec:
    """A topic to create: name, partitions, replication factor and topic configs."""

    name: str
    partitions: int = 1
    replication_factor: int = CLUSTER_DEFAULT
    config: Mapping[str, str] = field(default_factory=dict)


def admin_client(config: Mapping[str, Any]) -> AdminClient:
    """An AdminClient for a librdkafka ``config`` (as from ``Settings.client_config()``)."""
    return AdminClient(dict(config))


def ensure_reachable(settings: Settings, timeout: float = 10.0) -> None:
    """Fail within seconds, in one line naming the address, when Kafka cannot be reached.

    A TCP connection to the bootstrap servers first (refused or unresolvable: at once),
    then the cluster's metadata (credentials, TLS, a broker that is not Kafka).
    """
    servers = settings.bootstrap_servers
    reasons = []
    for server in servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=3).close()
            break
        except OSError as exc:
            reasons.append(exc.strerror or str(exc) or type(exc).__name__)
    else:
        raise KafkaUnreachableError(f"cannot reach Kafka at {servers}: {reasons[0]}")
    refused: list[KafkaError] = []

    def on_error(error: KafkaError) -> None:
        if error.code() in _REFUSED:
            refused.append(error)

    admin = AdminClient(settings.client_config(for_client="admin", error_cb=on_error))
    deadline = time.monotonic() + timeout
    while True:  # short tries, so a refused login or certificate ends it within a second
        try:
            admin.list_topics(timeout=min(1.0, max(0.1, deadline - time.monotonic())))
            return
        except KafkaException as exc:
            admin.poll(0)
            if refused:
                raise KafkaUnreachableError(
                    f"cannot connect to Kafka at {servers}: {_refusal(refused[0], settings)}"
                ) from None
            if time.monotonic() >= deadline:
                raise KafkaUnreachableError(
                    f"cannot reach Kafka at {servers}: {exc.args[0].str()}"
                ) from exc


_REFUSED = frozenset({KafkaError._AUTHENTICATION, KafkaError._SSL})
_CLIENT_PREFIX = re.compile(r"^\S+://\S+: ")
_CLIENT_SUFFIX = re.compile(r" \(after \d+ms in state \w+\)$")


def _refusal(error: KafkaError, settings: Settings) -> str:
    """librdkafka's reason a connection was refused, without the broker address and the
    timing around it (no secret is in it: librdkafka never quotes a password). For a
    certificate that does not verify, librdkafka says only that; Python's TLS says why."""
    reason = _CLIENT_SUFFIX.sub("", _CLIENT_PREFIX.sub("", error.str()))
    if error.code() != KafkaError._SSL:
        return reason
    why = _verify_failure(settings)
    if why:
        return f"TLS refused: the broker's certificate does not verify: {why}"
    return f"TLS refused: {reason}"


def _verify_failure(settings: Settings) -> str:
    """Why the first bootstrap server's certificate fails verification against the
    configured CA (``ssl.ca.location``, else the system's), or "" when it does not."""
    host, _, port = settings.bootstrap_servers.split(",")[0].strip().rpartition(":")
    ca = settings.kafka.get("ssl.ca.location") or None
    try:
        context = ssl.create_default_context(cafile=ca)
        with (
            socket.create_connection((host.strip("[]"), int(port)), timeout=3) as raw,
            context.wrap_socket(raw, server_hostname=host.strip("[]")),
        ):
            return ""
    except ssl.SSLCertVerificationError as exc:
        return f"{exc.verify_message} (trusting {ca or 'the system CAs'})"
    except (OSError, ValueError):
        return ""


def describe_topics(admin: AdminClient, timeout: float = 10.0) -> dict[str, int]:
    """Existing topics with their partition counts."""
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise KafkaOperationError(f"listing topics failed: {exc.args[0]}") from exc
    return {name: len(t.partitions) for name, t in metadata.topics.items() if t.error is None}


def cleanup_policies(
    admin: AdminClient, names: Iterable[str], timeout: float = 15.0
) -> dict[str, str]:
    """``cleanup.policy`` of each topic."""
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in names]
    if not resources:
        return {}
    policies = {}
    try:
        for resource, future in admin.describe_configs(resources, request_timeout=timeout).items():
            entries = future.result(timeout=timeout)
            policy = entries.get("cleanup.policy")
            policies[resource.name] = policy.value if policy is not None else "?"
    except KafkaException as exc:
        raise KafkaOperationError(f"describing topic configs failed: {exc.args[0].str()}") from exc
    return policies


def create_topics(
    admin: AdminClient, specs: Iterable[TopicSpec], timeout: float = 30.0
) -> dict[str, str]:
    """Create ``specs``; return ``{name: "created" | "exists"}``. Other failures raise."""
    new = [
        NewTopic(s.name, s.partitions, s.replication_factor, config=dict(s.config)) for s in specs
    ]
    if not new:
        return {}
    outcome: dict[str, str] = {}
    futures = admin.create_topics(new, operation_timeout=timeout, request_timeout=timeout)
    for name, future in futures.items():
        try:
            future.result(timeout=timeout)
            outcome[name] = "created"
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                outcome[name] = "exists"
            else:
                raise KafkaOperationError(f"creating topic {name} failed: {error.str()}") from exc
    created = [name for name, what in outcome.items() if what == "created"]
    if created:
        wait_for_leaders(admin, created, timeout)
    return outcome


def wait_for_leaders(admin: AdminClient, names: Iterable[str], timeout: float = 30.0) -> None:
    """Wait until every partition of ``names`` has a leader (new topics take a moment)."""
    pending = set(names)
    deadline = time.monotonic() + timeout
    while pending:
        try:
            metadata = admin.list_topics(timeout=max(1.0, deadline - time.monotonic()))
        except KafkaException as exc:
            raise KafkaOperationError(f"listing topics failed: {exc.args[0]}") from exc
        for name in list(pending):
            topic = metadata.topics.get(name)
            if (
                topic is not None
                and topic.error is None
                and topic.partitions
                and all(p.leader >= 0 and p.error is None for p in topic.partitions.values())
            ):
                pending.discard(name)
        if not pending:
            return
        if time.monotonic() > deadline:
            raise KafkaOperationError(
                f"topics have no leader after {timeout:.0f}s: {', '.join(sorted(pending))}"
            )
        time.sleep(0.1)


def delete_topics(admin: AdminClient, names: Iterable[str], timeout: float = 30.0) -> None:
    """Delete topics; a topic that is already gone is not an error."""
    names = list(names)
    if not names:
        return
    futures = admin.delete_topics(names, operation_timeout=timeout, request_timeout=timeout)
    for name, future in futures.items():
        try:
            future.result(timeout=timeout)
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise KafkaOperationError(f"deleting topic {name} failed: {error.str()}") from exc
