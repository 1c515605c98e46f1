"""The engine-neutral core: the per-partition task (``task``) and its one settle of an
outcome, the record path (``pipeline``), per-partition offsets (``offsets``), and the
middleware chain. Engines supply a clock, a sink and what holding a partition means."""

from streamkit.runtime.offsets import Chunk, PartitionOffsets
from streamkit.runtime.outcome import Outcome, Sink, Unqueued
from streamkit.runtime.pipeline import Pipeline
from streamkit.runtime.port import Counters, Hold
from streamkit.runtime.task import PartitionTask, Port

__all__ = [
    "Chunk",
    "Counters",
    "Hold",
    "Outcome",
    "PartitionOffsets",
    "PartitionTask",
    "Pipeline",
    "Port",
    "Sink",
    "Unqueued",
]
