"""One settings object for the whole framework.

Settings come from ``STREAMKIT_*`` environment variables, read when
:meth:`Settings.from_env` is called (never at import time). Any librdkafka property can be
passed through with ``STREAMKIT_KAFKA_<PROPERTY>``, dots written as underscores:
``STREAMKIT_KAFKA_SASL_PASSWORD=...`` sets ``sasl.password``, and
``STREAMKIT_KAFKA_SASL_PASSWORD_FILE=/run/secrets/kafka`` reads it from a file; with
``STREAMKIT_KAFKA_CONSUMER_<PROPERTY>`` (``_PRODUCER_``, ``_ADMIN_``) a property goes to
that kind of client only (librdkafka warns about a producer property on a consumer).
Secret values are kept out of ``repr``, logs and error messages.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamkit.errors import ConfigError

__all__ = [
    "DEFAULT_BOOTSTRAP_SERVERS",
    "Settings",
    "is_secret_key",
    "parse_duration",
    "redact",
    "remember_secrets",
    "scrub",
    "secrets_known",
]

DEFAULT_BOOTSTRAP_SERVERS = "127.0.0.1:9092"
_KAFKA_PREFIX = "STREAMKIT_KAFKA_"
_FILE_SUFFIX = "_FILE"
_SECRET_MARKERS = ("password", "secret", "jaas", "user.info", "credentials", "token", "key.pem")
_REDACTED = "***"
KAFKA_LOGGER = "streamkit.kafka"
"""The logger every Kafka client of streamkit logs through (librdkafka's own lines)."""
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_secrets: list[str] = []


def parse_duration(text: str) -> float:
    """Seconds in ``"250ms"``, ``"10s"``, ``"1m"``, ``"2h"`` or ``"1d"``."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise ConfigError(f"{text!r} is not a duration such as 500ms, 10s, 1m, 2h or 1d")
    return float(match.group(1)) * _UNIT[match.group(2)]


def remember_secrets(values: Iterable[str]) -> None:
    """Values that must never appear in a log line, error message or header of this
    process (see :func:`scrub`)."""
    for value in values:
        if value and len(value) >= 3 and value not in _secrets:
            _secrets.append(value)
    _secrets.sort(key=len, reverse=True)


def secrets_known() -> bool:
    """Whether any secret was remembered (nothing to scrub otherwise)."""
    return bool(_secrets)


def scrub(text: str) -> str:
    """``text`` with every remembered secret replaced by ``***``."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, _REDACTED)
    return text


def is_secret_key(key: str) -> bool:
    """Return True when a configuration key holds a secret (passwords, keys, tokens)."""
    lowered = key.lower()
    return any(marker in lowered for marker in _SECRET_MARKERS)


def redact(config: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of ``config`` with every secret value replaced by ``***``."""
    return {k: (_REDACTED if is_secret_key(k) else v) for k, v in config.items()}


def _xdg(env: Mapping[str, str], name: str, default: Path) -> Path:
    return Path(env.get(name) or default) / "streamkit"


CLIENTS = ("consumer", "producer", "admin")
"""The kinds of client a ``STREAMKIT_KAFKA_<CLIENT>_*`` variable may be meant for alone."""


def _kafka_property(name: str) -> str:
    return name.lower().replace("_", ".")


def _kafka_properties(env: Mapping[str, str]) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """The ``STREAMKIT_KAFKA_*`` passthrough, for every client, and the
    ``STREAMKIT_KAFKA_CONSUMER_*`` (``_PRODUCER_``, ``_ADMIN_``) one for one kind of client
    only; ``..._<PROPERTY>_FILE`` reads the property's value from a file (a secret mounted
    by Docker or Kubernetes, a password file of the local secured broker), its trailing
    newline dropped."""
    kafka: dict[str, str] = {}
    by_client: dict[str, dict[str, str]] = {client: {} for client in CLIENTS}
    for name, value in env.items():
        if not name.startswith(_KAFKA_PREFIX) or len(name) <= len(_KAFKA_PREFIX):
            continue
        rest, target = name[len(_KAFKA_PREFIX) :], kafka
        for client in CLIENTS:
            if rest.startswith(f"{client.upper()}_") and len(rest) > len(client) + 1:
                rest, target = rest[len(client) + 1 :], by_client[client]
                break
        if not rest.endswith(_FILE_SUFFIX):
            target[_kafka_property(rest)] = value
            continue
        try:
            content = Path(value).read_text().rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(f"{name}: cannot read {value}: {exc.strerror}") from None
        target[_kafka_property(rest[: -len(_FILE_SUFFIX)])] = content
    return kafka, by_client


@dataclass(frozen=True)
class Settings:
    """Where streamkit connects and how, resolved from the environment at call time.

    Attributes:
        bootstrap_servers: Kafka bootstrap servers (``STREAMKIT_BOOTSTRAP_SERVERS``).
        schema_registry_url: Confluent Schema Registry URL (``STREAMKIT_SCHEMA_REGISTRY_URL``);
            empty means Avro single-object encoding against the local schemas.
        kafka: librdkafka properties passed to every client (``STREAMKIT_KAFKA_*``, or
            ``STREAMKIT_KAFKA_*_FILE`` naming a file that holds the value).
        kafka_by_client: those passed to one kind of client only (``consumer``,
            ``producer``, ``admin``: ``STREAMKIT_KAFKA_CONSUMER_SESSION_TIMEOUT_MS``), after
            the others.
        cache_dir: downloaded artifacts such as the local broker's jars
            (``STREAMKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/streamkit``,
            else ``~/.cache/streamkit``).
        state_dir: the local broker's data, log and state file (``STREAMKIT_STATE_DIR``,
            else ``$XDG_STATE_HOME/streamkit``, else ``~/.local/state/streamkit``).
        java_home: ``JAVA_HOME``; when set, the local broker runs ``$JAVA_HOME/bin/java``.
        rocksdb_memory_mb: what a worker's RocksDB stores may hold in memory, all of them
            together (``STREAMKIT_ROCKSDB_MEMORY_MB``, 64 by default): their block cache,
            with their write buffers charged to it.
        avro_codec: ``auto`` (cavro where installed and exact, else fastavro) or
            ``fastavro`` (``STREAMKIT_AVRO_CODEC``).
        keyset: the Tink keyset file that encrypts and decrypts contract fields tagged
            PII (``STREAMKIT_KEYSET``; none: they are read as ciphertext).
        keyset_kms_uri: the KMS key the keyset file is encrypted with
            (``STREAMKIT_KEYSET_KMS_URI``; none: a cleartext keyset).
    """

    bootstrap_servers: str = DEFAULT_BOOTSTRAP_SERVERS
    schema_registry_url: str = ""
    kafka: Mapping[str, str] = field(default_factory=dict)
    kafka_by_client: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    cache_dir: Path = field(default_factory=lambda: Path.home() / ".cache" / "streamkit")
    state_dir: Path = field(default_factory=lambda: Path.home() / ".local" / "state" / "streamkit")
    java_home: str = ""
    rocksdb_memory_mb: int = 64
    avro_codec: str = "auto"
    keyset: str = ""
    keyset_kms_uri: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from ``environ`` (default: the process environment, now)."""
        env = os.environ if environ is None else environ
        bootstrap = env.get("STREAMKIT_BOOTSTRAP_SERVERS", "").strip() or DEFAULT_BOOTSTRAP_SERVERS
        for server in bootstrap.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ConfigError(
                    f"STREAMKIT_BOOTSTRAP_SERVERS: {server.strip()!r} is not host:port "
                    "(expected a comma-separated list such as 127.0.0.1:9092)"
                )
        kafka, by_client = _kafka_properties(env)
        if "bootstrap.servers" in kafka or any(
            "bootstrap.servers" in c for c in by_client.values()
        ):
            raise ConfigError(
                "STREAMKIT_KAFKA_BOOTSTRAP_SERVERS is not used: set STREAMKIT_BOOTSTRAP_SERVERS"
            )
        registry = env.get("STREAMKIT_SCHEMA_REGISTRY_URL", "").strip()
        home = Path(env.get("HOME") or Path.home())
        cache = env.get("STREAMKIT_CACHE_DIR") or _xdg(env, "XDG_CACHE_HOME", home / ".cache")
        state = env.get("STREAMKIT_STATE_DIR") or _xdg(
            env, "XDG_STATE_HOME", home / ".local" / "state"
        )
        memory = env.get("STREAMKIT_ROCKSDB_MEMORY_MB", "64").strip()
        if not memory.isdigit() or int(memory) < 8:
            raise ConfigError(
                f"STREAMKIT_ROCKSDB_MEMORY_MB: {memory!r} is not a whole number of MB, 8 or more"
            )
        codec = env.get("STREAMKIT_AVRO_CODEC", "auto").strip() or "auto"
        if codec not in {"auto", "fastavro"}:
            raise ConfigError(f"STREAMKIT_AVRO_CODEC: {codec!r} is not auto or fastavro")
        return cls(
            rocksdb_memory_mb=int(memory),
            avro_codec=codec,
            keyset=env.get("STREAMKIT_KEYSET", "").strip(),
            keyset_kms_uri=env.get("STREAMKIT_KEYSET_KMS_URI", "").strip(),
            bootstrap_servers=bootstrap,
            schema_registry_url=registry,
            kafka=kafka,
            kafka_by_client=by_client,
            cache_dir=Path(cache),
            state_dir=Path(state),
            java_home=env.get("JAVA_HOME", ""),
        )

    def client_config(
        self,
        defaults: Mapping[str, Any] | None = None,
        /,
        *,
        for_client: str | None = None,
        **overrides: Any,
    ) -> dict[str, Any]:
        """librdkafka configuration for a client: bootstrap, ``defaults`` (which the
        ``STREAMKIT_KAFKA_*`` passthrough replaces), the passthrough, that of
        ``for_client`` (``consumer``, ``producer`` or ``admin``: a configuration for one
        kind of client), then ``overrides``.

        librdkafka's own log lines go to the ``streamkit.kafka`` logger (the worker shows
        its warnings; the other commands keep them out of the terminal)."""
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "logger": logging.getLogger(KAFKA_LOGGER),
        }
        config.update(defaults or {})
        config.update(self.kafka)
        if for_client is not None:
            config.update(self.kafka_by_client.get(for_client, {}))
        config.update(overrides)
        return config

    def secret_values(self) -> list[str]:
        """Every secret value these settings hold (to keep them out of logs and errors)."""
        values = [str(v) for k, v in self.kafka.items() if is_secret_key(k)]
        values += [
            str(v)
            for client in self.kafka_by_client.values()
            for k, v in client.items()
            if is_secret_key(k)
        ]
        registry = self.schema_registry_url
        if "@" in registry:
            userinfo = registry.partition("://")[2].rpartition("@")[0]
            values += [userinfo, userinfo.partition(":")[2]]
        return [v for v in values if v]

    def __repr__(self) -> str:
        registry = self.schema_registry_url
        if "@" in registry:  # basic-auth credentials embedded in the URL
            scheme, _, rest = registry.partition("://")
            registry = f"{scheme}://{_REDACTED}@{rest.rpartition('@')[2]}"
        return (
            f"Settings(bootstrap_servers={self.bootstrap_servers!r}, "
            f"schema_registry_url={registry!r}, kafka={redact(self.kafka)!r}, "
            f"kafka_by_client={ {c: redact(k) for c, k in self.kafka_by_client.items() if k}!r})"
        )

    __str__ = __repr__
