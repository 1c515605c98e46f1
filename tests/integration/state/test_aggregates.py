"""Event-sourced state on a real broker: the state always equals a fold of the input."""

import os
import signal
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import orjson
import pytest
from confluent_kafka.admin import AdminClient, AlterConfigOpType
from confluent_kafka.admin._config import ConfigEntry, ConfigResource
from confluent_kafka.admin._resource import ResourceType

from streamkit.ops.admin import cleanup_policies
from streamkit.ops.local_broker import free_port
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
    wait_for(lambda: totals.members() == 2, 60, "the second worker joined the group")
    code, err = totals.stop(second)
    assert code == 0, err
    totals.produce(500)
    wait_for(totals.caught_up, 120, "all committed")
    assert totals.changelog_state() == totals.expected()
    code, err = totals.stop(first)
    assert code == 0, err


def _get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


def _changelog_records(totals: Totals) -> int:
    return totals.count_records(totals.changelog)


def test_after_compaction_a_fresh_worker_restores_the_same_state_and_serves_it(
    totals: Totals, tmp_path: Path
) -> None:
    totals.produce(600, customers=10)
    run = totals.start()
    wait_for(totals.caught_up, 90, "all committed")
    admin = AdminClient(totals.config)
    resource = ConfigResource(ResourceType.TOPIC, totals.changelog)
    for name, value in {
        "segment.ms": "100",
        "min.cleanable.dirty.ratio": "0.01",
        "delete.retention.ms": "100",
        "min.compaction.lag.ms": "0",
    }.items():
        resource.add_incremental_config(
            ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
        )
    admin.incremental_alter_configs([resource])[resource].result(timeout=30)

    def compacted() -> bool:
        totals.produce(20, customers=10)  # new segments roll, the cleaner gets work
        return _changelog_records(totals) < len(totals.events) // 2

    wait_for(compacted, 120, "the changelog compacted")
    wait_for(totals.caught_up, 60, "all committed")
    code, err = totals.stop(run)
    assert code == 0, err

    port = free_port()
    fresh = totals.start("--http-port", str(port), STREAMKIT_STATE_DIR=str(tmp_path / "fresh"))
    expected = totals.expected()
    wait_for(lambda: _get(port, "/readyz")[0] == 200, 60, "the fresh worker ready")
    for customer in ("c1", "c7"):
        status, body = _get(port, f"/state/totals/{customer}")
        assert status == 200, body
        assert orjson.loads(body)["state"] == expected[customer]
    status, body = _get(port, "/state/totals/nobody")
    assert status == 404
    assert "partitions_here" in orjson.loads(body)
    got = totals.cli("state", "get", "--app", "tests.integration.apps.totals", "totals", "c3")
    assert got.returncode == 0, got.stderr
    assert orjson.loads(got.stdout) == expected["c3"]
    missing = totals.cli("state", "get", "--app", "tests.integration.apps.totals", "totals", "zz")
    assert missing.returncode == 3
    code, err = totals.stop(fresh)
    assert code == 0, err
    assert "restored" in err


def test_exactly_once_survives_kill_9_mid_transaction(totals: Totals) -> None:
    totals.produce(1500)
    run = totals.start(TOTALS_EOS="1", TOTALS_DELAY_MS="2")
    wait_for(lambda: len(totals.changelog_state()) >= 20, 60, "some committed state")
    (worker,) = children_of(run.pid)
    os.kill(worker, signal.SIGKILL)  # mid-transaction: its open transaction must not show
    wait_for(lambda: children_of(run.pid) not in ([], [worker]), 60, "a new worker")
    totals.produce(500)
    wait_for(totals.caught_up, 120, "all committed after the restart")
    outputs = totals.read_committed(totals.output)
    per_input = Counter(state["last"] for state in outputs if state is not None)
    assert sorted(per_input) == list(range(2000))
    assert set(per_input.values()) == {1}  # every input exactly once
    assert totals.changelog_state() == totals.expected()
    code, err = totals.stop(run)
    assert code == 0, err
