"""The default failure handler: retry what is worth retrying, dead-letter the rest."""

from __future__ import annotations

from collections.abc import Mapping

from streamkit.errors import (
    GatherTimeoutError,
    KeyMismatchError,
    OutputTooLargeError,
    WindowStateTooLargeError,
)
from streamkit.failures.failure import DEAD_LETTER, STOP, Action, Decision, Failure, Stage
from streamkit.failures.policy import Retry, RetryPolicy

__all__ = ["FailurePolicy", "OutputTooLargeError"]


class FailurePolicy:
    """Retries per processor policy; dead letters for the rest (or stops, without DLQs).

    Decode and encode failures, contract violations, outputs that are too large, records
    keyed by something other than their state key and window states that would be too
    large are never retried: the record goes to the dead-letter topic at once.
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
        if isinstance(error, KeyMismatchError | WindowStateTooLargeError | GatherTimeoutError):
            return give_up
        if not policy.retryable(error) or failure.attempt >= policy.attempts:
            return give_up
        if isinstance(error, Retry) and error.delay is not None:
            return Decision(Action.RETRY, error.delay)
        return Decision(Action.RETRY, policy.delay(failure.attempt))
