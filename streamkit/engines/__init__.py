"""Where tasks run: on Kafka (``kafka``: the worker), in memory (``memory``: behind
``TestDriver``), and aside from the live group (``shadow``: replay)."""

from streamkit.engines.memory import MemoryEngine

__all__ = ["MemoryEngine"]
