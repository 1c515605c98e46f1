"""Operating Kafka: topic administration and the local broker."""

from streamkit.ops.admin import TopicSpec, admin_client, create_topics, delete_topics
from streamkit.ops.local_broker import BrokerState, LocalBroker, LocalBrokerConfig

__all__ = [
    "BrokerState",
    "LocalBroker",
    "LocalBrokerConfig",
    "TopicSpec",
    "admin_client",
    "create_topics",
    "delete_topics",
]
