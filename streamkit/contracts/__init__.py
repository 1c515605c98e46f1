"""Avro contracts: the schema repository and the serdes that enforce it."""

from streamkit.contracts.repository import Contract, SchemaRepository
from streamkit.contracts.serde import (
    AvroSerde,
    BytesSerde,
    ConfluentAvroSerde,
    JsonSerde,
    Serde,
    StringSerde,
    registry_client,
)

__all__ = [
    "AvroSerde",
    "BytesSerde",
    "ConfluentAvroSerde",
    "Contract",
    "JsonSerde",
    "SchemaRepository",
    "Serde",
    "StringSerde",
    "registry_client",
]
