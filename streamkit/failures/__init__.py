"""Failures: what failed (:class:`Failure`), what to do about it (retry policies and the
default :class:`FailurePolicy`), and the record formats of dead letters and retries."""

from streamkit.failures.dead_letter import DeadLetter, read_dead_letter
from streamkit.failures.failure import Action, Decision, Failure, FailureHandler, Stage
from streamkit.failures.handler import FailurePolicy, OutputTooLargeError
from streamkit.failures.policy import Retry, RetryPolicy

__all__ = [
    "Action",
    "DeadLetter",
    "Decision",
    "Failure",
    "FailureHandler",
    "FailurePolicy",
    "OutputTooLargeError",
    "Retry",
    "RetryPolicy",
    "Stage",
    "read_dead_letter",
]
