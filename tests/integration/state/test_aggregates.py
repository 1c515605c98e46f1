"""Event-sourced state on a real broker: the state always equals a fold of the input."""

import os
import signal

import pytest
from confluent_kafka.admin import AdminClient

from streamkit.ops.admin import cleanup_policies
from tests.integration.runtime.conftest import wait_for
from tests.integration.state.conftest import Totals, children_of


def test_a_clean_run_gives_state_equal_to_the_fold_and_a_compacted_changelog(
    totals: Totals,
) -> None:
    totals.produce(2000, close_every=97)
    run = totals.start()
    wait_for(totals.caught_up, 90, "all committed")
    assert totals.changelog_state() == totals.expected()
    policies = cleanup_policies(AdminClient(totals.config), [totals.changelog])
    assert policies[totals.changelog] == "compact"
    code, err = totals.stop(run)
    assert code == 0, err


@pytest.mark.parametrize("store", ["memory", "rocksdb"])
def test_kill_9_mid_stream_and_a_restart_keep_state_equal_to_the_fold(
    totals: Totals, store: str
) -> None:
    totals.produce(1500)
    run = totals.start(TOTALS_STORE=store, TOTALS_DELAY_MS="2")
    wait_for(lambda: len(totals.changelog_state()) >= 20, 60, "some state")
    (worker,) = children_of(run.pid)
    os.kill(worker, signal.SIGKILL)  # the supervisor restarts it
    wait_for(lambda: children_of(run.pid) not in ([], [worker]), 60, "a new worker")
    totals.produce(500)
    wait_for(totals.caught_up, 120, "all committed after the restart")
    assert totals.changelog_state() == totals.expected()
    code, err = totals.stop(run)
    assert code == 0, err
    assert "exited with code -9; restarting" in err
    if store == "rocksdb":
        assert "restored" in err


def test_a_rebalance_to_two_workers_and_back_keeps_state_equal_to_the_fold(
    totals: Totals,
) -> None:
    first = totals.start(TOTALS_DELAY_MS="1")
    totals.produce(1000)
    wait_for(lambda: len(totals.changelog_state()) >= 10, 60, "some state")
    second = totals.start(TOTALS_DELAY_MS="1")
    totals.produce(1000)
    code, err = totals.stop(second)
    assert code == 0, err
    totals.produce(500)
    wait_for(totals.caught_up, 120, "all committed")
    assert totals.changelog_state() == totals.expected()
    code, err = totals.stop(first)
    assert code == 0, err
