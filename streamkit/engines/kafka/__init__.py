"""The Kafka engine: workers as consumer-group members (``worker``), the batch loop they
share with shadow replay (``engine``), delivery tracking (``delivery``), commits and
rebalances (``group``), client configurations (``clients``) and transactions."""

from streamkit.engines.kafka.clients import ChangelogReader, read_until
from streamkit.engines.kafka.worker import KafkaWorker, WorkerOptions

__all__ = ["ChangelogReader", "KafkaWorker", "WorkerOptions", "read_until"]
