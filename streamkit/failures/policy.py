"""Retry policies and the ``Retry`` signal.

A :class:`RetryPolicy` says how often a processor is tried on one record and how long to
wait in between: exponential backoff with jitter, capped, for the exception types that are
worth retrying. Retries are *blocking*: the record's partition waits (paused, the consumer
keeps polling) so per-partition order holds; other partitions keep flowing. When the budget
is spent, or the failure is not retryable, the record goes to the dead-letter topic.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from streamkit.errors import ConfigError, Retry

__all__ = ["Retry", "RetryPolicy"]


@dataclass(frozen=True)
class RetryPolicy:
    """How a processor is retried on one record.

    Attributes:
        attempts: total attempts, the first included (1 = no retry).
        backoff: seconds before the second attempt.
        multiplier: each further wait is this much longer.
        max_delay: the longest wait.
        jitter: +/- this fraction of randomness on each wait (0 = none).
        retry_on: exception types worth retrying (default: any ``Exception``).
        give_up_on: exception types never retried, even if they match ``retry_on``.
    """

    attempts: int = 1
    backoff: float = 0.5
    multiplier: float = 2.0
    max_delay: float = 30.0
    jitter: float = 0.2
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    give_up_on: tuple[type[BaseException], ...] = ()

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigError(f"RetryPolicy.attempts must be >= 1, not {self.attempts}")
        if self.backoff < 0 or self.max_delay < 0 or self.multiplier < 1:
            raise ConfigError("RetryPolicy: backoff and max_delay >= 0, multiplier >= 1")
        if not 0 <= self.jitter < 1:
            raise ConfigError("RetryPolicy.jitter must be in [0, 1)")

    @classmethod
    def of(cls, retries: int | RetryPolicy | None, default: RetryPolicy) -> RetryPolicy:
        """A policy from a processor's ``retries=`` (a count of retries, or a policy)."""
        if retries is None:
            return default
        if isinstance(retries, RetryPolicy):
            return retries
        if retries < 0:
            raise ConfigError(f"retries must be >= 0, not {retries}")
        return RetryPolicy(
            attempts=retries + 1,
            backoff=default.backoff,
            multiplier=default.multiplier,
            max_delay=default.max_delay,
            jitter=default.jitter,
            retry_on=default.retry_on,
            give_up_on=default.give_up_on,
        )

    def retryable(self, error: BaseException) -> bool:
        """Whether ``error`` may be retried at all under this policy."""
        if isinstance(error, Retry):
            return True
        return isinstance(error, self.retry_on) and not isinstance(error, self.give_up_on)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        base = min(self.max_delay, self.backoff * self.multiplier ** (attempt - 1))
        if not self.jitter:
            return base
        spread = (rng or random).uniform(-self.jitter, self.jitter)
        return max(0.0, min(self.max_delay, base * (1 + spread)))
