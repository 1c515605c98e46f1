"""When to add and remove workers: the lag-driven policy of ``streamkit run --autoscale``.

Pure: it is given the time, the workers running and each input partition's lag, and
answers how many workers there should be and why. The supervisor measures and acts.

* **Up** at once: ``ceil(lag / lag_per_worker)`` workers, between the bounds and never
  more than the input partitions (a consumer group gives an extra member nothing).
* **Down** slowly: to the highest recommendation of the last ``cooldown`` seconds, and
  only ``cooldown`` after the previous change (the stabilisation window of Kubernetes'
  HPA), so a pause in a burst does not stop workers that are needed again a moment later.
* **To zero** when ``min_workers`` is 0 and the lag has stayed at or below
  ``activation_lag`` for a cool-down; **from zero** as soon as it exceeds it.
* **Stuck partitions** are left out: a partition whose committed offset has not moved for
  ``stuck_after`` seconds while workers run and records wait is held by one record
  (a blocking retry), and more workers would not help it (keda #3904). It counts again
  once its offset moves. With no worker running, every partition's lag counts, so
  records behind a once-stuck partition still wake a worker.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from streamkit.errors import ConfigError
from streamkit.records import TP

__all__ = ["AutoscaleOptions", "Autoscaler", "Decision", "Lag", "parse_bounds"]


class Lag(Protocol):
    """What the policy needs of one partition (``PartitionLag`` has it)."""

    @property
    def committed(self) -> int | None:
        """The group's committed offset, None if it has none."""

    @property
    def lag(self) -> int:
        """Records behind."""


@dataclass(frozen=True)
class AutoscaleOptions:
    """The bounds and targets of autoscaling.

    Attributes:
        min_workers: fewest workers; 0 lets the app scale to zero.
        max_workers: most workers (also capped at the input partitions).
        lag_per_worker: records behind that one worker is expected to absorb.
        activation_lag: lag above which the first worker starts (scale from zero), and at
            or below which the last one stops.
        cooldown: seconds between a change and a scale-down, and the window whose
            highest recommendation a scale-down goes to.
        interval: seconds between two lag measurements.
        stuck_after: seconds without progress after which a lagging partition is stuck.
    """

    min_workers: int = 1
    max_workers: int = 4
    lag_per_worker: int = 1000
    activation_lag: int = 0
    cooldown: float = 30.0
    interval: float = 2.0
    stuck_after: float = 60.0

    def __post_init__(self) -> None:
        if not 0 <= self.min_workers <= self.max_workers or self.max_workers < 1:
            raise ConfigError(
                f"autoscale bounds {self.min_workers}..{self.max_workers} are not "
                "MIN..MAX with 0 <= MIN <= MAX and MAX >= 1"
            )
        if self.lag_per_worker < 1 or self.activation_lag < 0:
            raise ConfigError("the lag per worker must be >= 1 and the activation lag >= 0")


def parse_bounds(text: str) -> tuple[int, int]:
    """``"0..8"`` -> ``(0, 8)``; a clear error otherwise."""
    low, sep, high = text.partition("..")
    try:
        if not sep:
            raise ValueError
        bounds = int(low), int(high)
    except ValueError:
        raise ConfigError(f"--autoscale {text!r}: expected MIN..MAX, e.g. 0..4") from None
    AutoscaleOptions(min_workers=bounds[0], max_workers=bounds[1])
    return bounds


@dataclass(frozen=True)
class Decision:
    """One measurement's verdict.

    Attributes:
        workers: the workers there should be now.
        reason: why, in words (logged with every change).
        lag: the lag counted (stuck partitions left out).
        stuck: the partitions left out as stuck.
        cap: the most workers that could be used (bounds and partitions).
    """

    workers: int
    reason: str
    lag: int
    stuck: tuple[TP, ...] = ()
    cap: int = 0


@dataclass
class _Progress:
    committed: int | None
    since: float


class Autoscaler:
    """Remembers recent recommendations and partition progress between measurements."""

    def __init__(self, options: AutoscaleOptions) -> None:
        self.options = options
        self._progress: dict[TP, _Progress] = {}
        self._recent: deque[tuple[float, int]] = deque()
        self._changed_at = -math.inf

    def changed(self, now: float) -> None:
        """The supervisor applied a change at ``now``."""
        self._changed_at = now

    def _stuck(self, now: float, running: int, lags: Mapping[TP, Lag]) -> tuple[TP, ...]:
        stuck: list[TP] = []
        for tp, lag in lags.items():
            seen = self._progress.get(tp)
            if seen is None or seen.committed != lag.committed or lag.lag == 0 or not running:
                # Progress, nothing waiting, or nobody to make progress: the clock restarts.
                self._progress[tp] = _Progress(lag.committed, now)
            elif now - seen.since >= self.options.stuck_after:
                stuck.append(tp)
        return tuple(sorted(stuck))

    def decide(self, now: float, running: int, lags: Mapping[TP, Lag]) -> Decision:
        """How many workers there should be, given ``running`` and the partitions' lag."""
        o = self.options
        stuck = self._stuck(now, running, lags)
        lag = sum(p.lag for tp, p in lags.items() if tp not in stuck)
        cap = max(o.min_workers, min(o.max_workers, len(lags) or o.max_workers))
        if lag <= o.activation_lag:
            wanted = o.min_workers
            why = f"lag {lag} <= activation {o.activation_lag}"
        else:
            wanted = min(cap, max(o.min_workers, 1, math.ceil(lag / o.lag_per_worker)))
            why = f"lag {lag} / {o.lag_per_worker} per worker"
            if wanted == cap and cap < math.ceil(lag / o.lag_per_worker):
                why += f" (capped at {cap}: " + (
                    "max workers)" if cap == o.max_workers else "input partitions)"
                )
        if stuck:
            why += f"; {len(stuck)} stuck partition(s) left out"
        self._recent.append((now, wanted))
        while self._recent and now - self._recent[0][0] > o.cooldown:
            self._recent.popleft()
        if wanted > running:
            return Decision(wanted, f"scale up: {why}", lag, stuck, cap)
        if wanted < running:
            settled = now - self._changed_at >= o.cooldown
            target = max(w for _, w in self._recent)
            if settled and target < running:
                return Decision(
                    target, f"scale down: {why}, for {o.cooldown:.0f}s", lag, stuck, cap
                )
            return Decision(running, f"hold: {why}, cooling down", lag, stuck, cap)
        return Decision(running, f"steady: {why}", lag, stuck, cap)
