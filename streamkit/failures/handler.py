"""The default failure handler: retry what is worth retrying, dead-letter the rest."""

from __future__ import annotations

from collections.abc import Mapping

from confluent_kafka import KafkaError

from streamkit.errors import KafkaOperationError
from streamkit.failures.policy import Retry, RetryPolicy
from streamkit.runtime.failure import DEAD_LETTER, STOP, Action, Decision, Failure, Stage

__all__ = ["FailurePolicy", "OutputTooLargeError", "is_too_large"]

_TOO_LARGE = frozenset(
    {KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE, KafkaError.INVALID_RECORD}
)


class OutputTooLargeError(KafkaOperationError):
    """An output record is larger than its topic (or the producer) accepts."""


def is_too_large(error: KafkaError) -> bool:
    """True for the errors that mean "this record can never be written"."""
    return error.code() in _TOO_LARGE


class FailurePolicy:
    """Retries per processor policy; dead letters for the rest (or stops, without DLQs).

    Decode and encode failures, contract violations and outputs that are too large are
    never retried: the record goes to the dead-letter topic at once.
    """

    def __init__(
        self,
        policies: Mapping[str, RetryPolicy],
        default: RetryPolicy,
        *,
        dead_letters: bool = True,
    ) -> None:
        self.policies = dict(policies)
        self.default = default
        self.dead_letters = dead_letters

    def on_failure(self, failure: Failure) -> Decision:
        give_up = DEAD_LETTER if self.dead_letters else STOP
        if failure.stage is not Stage.PROCESS:
            return give_up
        policy = self.policies.get(failure.processor, self.default)
        error = failure.error
        if not policy.retryable(error) or failure.attempt >= policy.attempts:
            return give_up
        if isinstance(error, Retry) and error.delay is not None:
            return Decision(Action.RETRY, error.delay)
        return Decision(Action.RETRY, policy.delay(failure.attempt))
