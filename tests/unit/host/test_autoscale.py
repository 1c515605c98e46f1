"""The autoscaling policy: up at once, down after a cool-down, to and from zero, capped at
the partitions, and blind to a partition held by one record."""

import pytest

from streamkit.engines.kafka.lag import PartitionLag
from streamkit.errors import ConfigError
from streamkit.host.autoscale import AutoscaleOptions, Autoscaler, parse_bounds


def lags(*per_partition: int, committed: int = 0) -> dict[tuple[str, int], PartitionLag]:
    return {
        ("in", p): PartitionLag(committed, 0, committed + lag)
        for p, lag in enumerate(per_partition)
    }


def test_lag_scales_up_at_once_to_lag_over_target() -> None:
    policy = Autoscaler(AutoscaleOptions(min_workers=1, max_workers=8, lag_per_worker=100))
    decision = policy.decide(0.0, 1, lags(150, 150, 0, 0))
    assert decision.workers == 3
    assert decision.reason.startswith("scale up: lag 300 / 100 per worker")


def test_scale_up_is_capped_at_max_and_at_the_input_partitions() -> None:
    policy = Autoscaler(AutoscaleOptions(min_workers=1, max_workers=3, lag_per_worker=10))
    assert policy.decide(0.0, 1, lags(500, 500, 500, 500)).workers == 3
    wide = Autoscaler(AutoscaleOptions(min_workers=1, max_workers=16, lag_per_worker=10))
    decision = wide.decide(0.0, 1, lags(500, 500))
    assert decision.workers == 2
    assert "capped at 2: input partitions" in decision.reason


def test_scale_down_waits_for_the_cooldown_and_takes_the_window_high() -> None:
    options = AutoscaleOptions(min_workers=1, max_workers=8, lag_per_worker=100, cooldown=30)
    policy = Autoscaler(options)
    policy.changed(0.0)  # went to 4 at t=0
    quiet = lags(0, 0, 0, 0)
    assert policy.decide(10.0, 4, lags(250, 0, 0, 0)).workers == 4  # asks for 3: cooling
    assert policy.decide(20.0, 4, quiet).reason.startswith("hold")
    assert policy.decide(31.0, 4, quiet).workers == 3  # the window still holds the 3
    policy.changed(31.0)
    assert policy.decide(45.0, 3, quiet).workers == 3
    assert policy.decide(62.0, 3, quiet).workers == 1


def test_scale_to_zero_after_quiet_and_back_on_activation() -> None:
    options = AutoscaleOptions(min_workers=0, max_workers=4, activation_lag=5, cooldown=10)
    policy = Autoscaler(options)
    assert policy.decide(0.0, 0, lags(5)).workers == 0  # at the threshold: stay asleep
    up = policy.decide(1.0, 0, lags(6))
    assert up.workers == 1
    assert "lag 6" in up.reason
    policy.changed(1.0)
    assert policy.decide(5.0, 1, lags(0)).workers == 1
    assert policy.decide(12.0, 1, lags(3)).workers == 0


def test_a_partition_whose_offset_does_not_move_is_left_out_as_stuck() -> None:
    options = AutoscaleOptions(
        min_workers=1, max_workers=8, lag_per_worker=100, stuck_after=30, cooldown=0
    )
    policy = Autoscaler(options)
    poison = {("in", 0): PartitionLag(7, 0, 900), ("in", 1): PartitionLag(50, 0, 50)}
    first = policy.decide(0.0, 2, poison)
    assert first.stuck == ()
    assert first.workers == 2  # 900 behind, capped at the 2 partitions
    later = policy.decide(31.0, 2, poison)
    assert later.stuck == (("in", 0),)
    assert later.lag == 0
    assert later.workers == 1
    assert "1 stuck partition(s) left out" in later.reason
    moved = {("in", 0): PartitionLag(8, 0, 900), ("in", 1): PartitionLag(50, 0, 50)}
    assert policy.decide(32.0, 1, moved).stuck == ()


def test_with_no_worker_every_partition_counts_so_records_still_wake_one() -> None:
    options = AutoscaleOptions(min_workers=0, max_workers=2, stuck_after=1, cooldown=0)
    policy = Autoscaler(options)
    held = {("in", 0): PartitionLag(7, 0, 9)}
    for now in (0.0, 5.0, 10.0):
        assert policy.decide(now, 0, held).workers == 1


def test_a_partition_never_committed_counts_from_its_start() -> None:
    assert PartitionLag(None, 40, 100).lag == 60
    assert PartitionLag(120, 40, 100).lag == 0


@pytest.mark.parametrize("text", ["4", "a..b", "3..1", "0..0", "-1..2"])
def test_bad_bounds_are_refused_with_the_expected_form(text: str) -> None:
    with pytest.raises(ConfigError, match=r"MIN\.\.MAX"):
        parse_bounds(text)


def test_good_bounds_parse() -> None:
    assert parse_bounds("0..8") == (0, 8)
