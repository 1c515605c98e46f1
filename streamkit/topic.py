"""A topic an app reads or writes, with its contract: the declaration ``app.topic`` makes."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["CLUSTER_DEFAULT", "NAME", "Topic"]

_PLAIN_FORMATS = frozenset({"json", "string", "bytes", "debezium", "debezium+avro"})
NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
"""What an app, topic, store or processor name may be made of."""

CLUSTER_DEFAULT = -1
"""A replication factor that leaves it to the cluster (``default.replication.factor``)."""


@dataclass(frozen=True)
class Topic:
    """A topic the app reads or writes, with its contract.

    Attributes:
        name: the Kafka topic.
        value: ``"json"``, ``"string"``, ``"bytes"``, the name of an Avro contract in the
            app's schema directory (full or short name), ``"json:<contract>"`` (JSON
            checked against that Avro contract both ways), or ``"debezium"`` (or
            ``"debezium+avro"``) for change events (see :mod:`streamkit.contracts.changes`).
        key: the same choices for the key; ``"string"`` by default.
        partitions: partition count that ``streamkit topics create`` makes and checks.
        replication_factor: replicas per partition; by default the cluster's
            ``default.replication.factor`` (1 on the local broker, 3 on a cluster of three).
        config: topic configs (``retention.ms``, ``cleanup.policy``...).
        keyed_by: the value field its records are keyed by, if any: an aggregate, window,
            gather or join keyed by that field reads the topic as it is; keyed by anything
            else, it repartitions the topic first.
    """

    name: str
    value: str = "json"
    key: str = "string"
    partitions: int = 1
    replication_factor: int = CLUSTER_DEFAULT
    config: Mapping[str, str] = field(default_factory=dict)
    keyed_by: str | None = None

    @property
    def is_avro(self) -> bool:
        """True when the value is an Avro contract."""
        return self.value not in _PLAIN_FORMATS and not self.value.startswith("json:")
