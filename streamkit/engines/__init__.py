"""Where processors run: on Kafka (the worker) and in memory (for tests)."""

from streamkit.engines.memory import MemoryEngine, StoredRecord

__all__ = ["MemoryEngine", "StoredRecord"]
