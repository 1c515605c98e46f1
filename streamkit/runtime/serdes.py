"""The serdes of an app's topics: a key and a value serde per declared topic, with the
contracts parsed once (and the Schema Registry asked only when a contract is used)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streamkit.app import App, Topic
from streamkit.contracts.changes import (
    CHANGE_FORMATS,
    Change,
    ChangeKeySerde,
    ChangeSerde,
    read_json,
    registry_reader,
)
from streamkit.contracts.encryption import load_aead, sealed
from streamkit.contracts.repository import SchemaRepository
from streamkit.contracts.serde import (
    AvroSerde,
    BytesSerde,
    ConfluentAvroSerde,
    JsonContractSerde,
    JsonSerde,
    Serde,
    StringSerde,
    registry_client,
)
from streamkit.errors import ConfigError, SerializationError
from streamkit.settings import Settings

__all__ = ["TopicSerdes", "app_serdes", "make_serde"]


@dataclass(frozen=True)
class TopicSerdes:
    """Key and value serdes of one topic."""

    key: Serde
    value: Serde

    def decode(
        self, key: bytes | None, value: bytes, where: tuple[str, int, int]
    ) -> tuple[Any, Any]:
        """The event and its key, decoded; a
        :class:`~streamkit.errors.SerializationError` says where (topic, partition,
        offset)."""
        try:
            event, event_key = (
                self.value.decode(value),
                None if key is None else self.key.decode(key),
            )
        except SerializationError as exc:
            raise exc.at(*where) from None
        if isinstance(event, Change):
            event = event.with_key(event_key)
        return event, event_key

    def decode_row(
        self, key: bytes | None, value: bytes | None, where: tuple[str, int, int]
    ) -> tuple[Any, Any]:
        """Like :meth:`decode`, a tombstone (value None) too: (None, its key)."""
        if value is not None:
            return self.decode(key, value, where)
        try:
            return None, None if key is None else self.key.decode(key)
        except SerializationError as exc:
            raise exc.at(*where) from None

    @property
    def changes(self) -> bool:
        """Whether its values are change events (a tombstone is a change too)."""
        return isinstance(self.value, ChangeSerde)


def make_serde(
    fmt: str,
    repository: Callable[[], SchemaRepository],
    *,
    registry: Callable[[], Any] | None = None,
    subject: str = "",
    fast: bool = True,
    keyset: Callable[[], Any | None] = lambda: None,
    key: bool = False,
) -> Serde:
    """The serde for a topic format: json, string, bytes, or an Avro contract name
    (``fast``: with cavro where it can be; see :mod:`streamkit.contracts._cavro`; a
    contract with fields tagged PII seals them with ``keyset()``'s AEAD, see
    :mod:`streamkit.contracts.encryption`)."""
    if fmt == "json":
        return JsonSerde()
    if fmt == "string":
        return StringSerde()
    if fmt == "bytes":
        return BytesSerde()
    if fmt in CHANGE_FORMATS:
        return _change_serde(fmt, registry, key)
    if fmt.startswith("json:"):
        return JsonContractSerde(repository(), fmt.removeprefix("json:"))
    if registry is not None:
        avro: Any = ConfluentAvroSerde(registry(), repository(), fmt, subject)
    else:
        avro = AvroSerde(repository(), fmt, fast=fast)
    return sealed(avro, keyset)  # type: ignore[no-any-return]


def _change_serde(fmt: str, registry: Callable[[], Any] | None, key: bool) -> Serde:
    """The serde of a change topic's keys or values (see
    :mod:`streamkit.contracts.changes`)."""
    read: Callable[[bytes], Any] = read_json
    if fmt == "debezium+avro":
        if registry is None:
            raise ConfigError(
                "debezium+avro topics are read with the Schema Registry: set "
                "STREAMKIT_SCHEMA_REGISTRY_URL"
            )
        read = registry_reader(registry())
    return ChangeKeySerde(read, fmt) if key else ChangeSerde(read, fmt)


def app_serdes(app: App, settings: Settings) -> dict[str, TopicSerdes]:
    """The serdes of every topic ``app`` declares; a bad contract fails here, once."""
    repository: list[SchemaRepository] = []
    registry: list[Any] = []

    def contracts() -> SchemaRepository:
        if not repository:
            repository.append(SchemaRepository.from_directory(app.schemas_dir()))
        return repository[0]

    def client() -> Any:
        if not registry:
            registry.append(registry_client(settings.schema_registry_url))
        return registry[0]

    chosen = client if settings.schema_registry_url else None

    fast = settings.avro_codec == "auto"
    keyset = functools.cache(lambda: load_aead(settings.keyset, settings.keyset_kms_uri))

    def serdes(topic: Topic) -> TopicSerdes:
        return TopicSerdes(
            key=make_serde(
                topic.key,
                contracts,
                registry=chosen,
                subject=f"{topic.name}-key",
                fast=fast,
                keyset=keyset,
                key=True,
            ),
            value=make_serde(
                topic.value,
                contracts,
                registry=chosen,
                subject=f"{topic.name}-value",
                fast=fast,
                keyset=keyset,
            ),
        )

    return {name: serdes(topic) for name, topic in app.topics.items()}
