"""The exceptions streamkit raises.

Every error streamkit raises on purpose derives from :class:`StreamkitError`, so a caller
can catch one root. Each leaf documents when it is raised. Messages are one line that
says what went wrong and where; they never contain secrets.
"""

from __future__ import annotations

__all__ = [
    "BrokerError",
    "ConfigError",
    "ContractError",
    "KafkaOperationError",
    "SerializationError",
    "StreamkitError",
]


class StreamkitError(Exception):
    """Root of every error streamkit raises on purpose."""


class ConfigError(StreamkitError):
    """A setting is missing, malformed or contradicts another one."""


class BrokerError(StreamkitError):
    """The local broker could not be prepared, started, stopped or found."""


class KafkaOperationError(StreamkitError):
    """A Kafka client or admin operation failed (timeout, refused, unknown topic...)."""


class SerializationError(StreamkitError):
    """Bytes could not be decoded into an event, or an event could not be encoded.

    The message names the topic, partition, offset and schema when they are known.
    """


class ContractError(SerializationError):
    """An event does not satisfy the Avro contract declared for its topic."""
