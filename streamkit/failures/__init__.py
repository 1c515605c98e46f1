"""Failures: retry policies, dead-letter records and the operator's DLQ tools."""

from streamkit.failures.dead_letter import DeadLetter, dlq_topic, parked_topic, read_dead_letter
from streamkit.failures.handler import FailurePolicy
from streamkit.failures.policy import Retry, RetryPolicy, parse_duration

__all__ = [
    "DeadLetter",
    "FailurePolicy",
    "Retry",
    "RetryPolicy",
    "dlq_topic",
    "parked_topic",
    "parse_duration",
    "read_dead_letter",
]
