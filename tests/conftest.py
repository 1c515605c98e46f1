"""The suite's own session.

- Whatever it starts (brokers, clusters, workers, PostgreSQL, Connect) dies with the test
  process, also when it is killed or aborts (see :mod:`streamkit.testing._reaper`).
- ``make test`` runs the unit tests and, of the tests on a real broker, the ones in
  :data:`QUICK` (a few per capability, about four minutes); every other one is marked
  ``full`` and runs in ``make test-all`` (long fault runs, the cluster, security, CDC,
  Helm, benchmarks' smoke runs, the demos).
- A test on a broker that fails leaves its logs (the stderr of every process it started,
  what else it wrote to its ``tmp_path``, the tail of each local broker's log) in
  ``test-logs/<session>/<test>/``; the summary names the folder, and CI prints it.
"""

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamkit.testing._reaper import watch

ROOT = Path(__file__).resolve().parents[1]
KEPT = ROOT / "test-logs" / time.strftime("%Y%m%dT%H%M%S")
"""Where the logs of this session's failed tests go."""
_FAILED = pytest.StashKey[bool]()
_KEEP_BYTES = 2 << 20  # of one file: the tail of a longer one

QUICK = frozenset(
    {
        "tests/integration/runtime/test_worker_group.py::test_three_workers_split_the_partitions_and_produce_one_output_per_input",
        "tests/integration/runtime/test_filters.py::test_header_and_event_patterns_keep_records_from_processors",
        "tests/integration/runtime/test_timestamps.py::test_outputs_carry_their_inputs_timestamps",
        "tests/integration/runtime/test_concurrency.py::test_order_holds_under_concurrency_with_random_delays",
        "tests/integration/runtime/test_concurrency.py::test_a_graceful_stop_lets_running_calls_finish_and_commits_them",
        "tests/integration/runtime/test_blocking.py::test_a_second_hold_at_a_later_offset_keeps_the_earlier_position",
        "tests/integration/runtime/test_supervisor.py::test_poison_record_crash_loop_gives_up_and_commits_nothing_past_it",
        "tests/integration/runtime/test_supervisor.py::test_missing_topics_stop_the_run_with_exit_code_2",
        "tests/integration/runtime/test_supervisor.py::test_unknown_module_fails_before_any_worker_starts",
        "tests/integration/runtime/test_transaction_backoff.py::test_a_committed_transaction_resets_the_partitions_abort_backoff",
        "tests/integration/runtime/test_engines_agree.py::test_driver_worker_and_shadow_replay_give_identical_results",
        "tests/integration/runtime/test_queue.py::test_more_workers_than_partitions_all_work_and_a_poison_job_is_dead_lettered",
        "tests/integration/failures/test_dead_letters.py::test_one_percent_poison_of_every_kind_is_dead_lettered_and_everything_else_flows",
        "tests/integration/failures/test_dead_letters.py::test_a_function_failing_twice_then_succeeding_is_called_three_times_with_backoff",
        "tests/integration/failures/test_dead_letters.py::test_redrive_round_trip_and_a_record_failing_again_is_parked",
        "tests/integration/failures/test_lost_outputs.py::test_outputs_refused_by_the_topic_are_found_per_record_and_dead_lettered",
        "tests/integration/state/test_aggregates.py::test_a_clean_run_gives_state_equal_to_the_fold_and_a_compacted_changelog",
        "tests/integration/state/test_aggregates.py::test_after_compaction_a_fresh_worker_restores_the_same_state_and_serves_it",
        "tests/integration/state/test_windows.py::test_final_results_equal_the_oracle_after_a_clean_run",
        "tests/integration/state/test_windows.py::test_a_keys_windows_answer_state_get_and_http_in_a_time_range",
        "tests/integration/state/test_dedupe.py::test_the_same_event_id_twice_runs_the_side_effect_once_even_across_restarts",
        "tests/integration/state/test_deleted_while_read.py::test_read_until_reads_on_from_the_new_log_start",
        "tests/integration/state/test_deleted_while_read.py::test_a_restore_reads_on_from_the_new_log_start",
        "tests/integration/state/test_restore_latency.py::test_small_partitions_restore_without_waiting",
        "tests/integration/state/test_patterns.py::test_tables_gather_join_and_rekeying_hold_across_a_kill_9[at-least-once]",
        "tests/integration/state/test_workflows.py::test_waits_time_out_after_a_restart_and_operators_see_the_instances",
        "tests/integration/observability/test_metrics_and_health.py::test_metrics_move_as_records_flow_and_health_endpoints_answer",
        "tests/integration/observability/test_metrics_and_health.py::test_json_logs_name_the_record_and_secrets_never_appear",
        "tests/integration/observability/test_tracing.py::test_trace_context_flows_through_two_apps_and_into_dead_letters",
        "tests/integration/ops/test_replay.py::test_reset_to_a_time_reprocesses_exactly_that_range_and_dry_run_moves_nothing",
        "tests/integration/ops/test_replay.py::test_shadow_replay_leaves_the_group_alone_and_writes_the_same_bytes_twice",
        "tests/integration/ops/test_replay.py::test_topics_describe_lists_every_topic_with_policy_and_lag",
        "tests/integration/ops/test_replay.py::test_reset_moves_the_apps_repartition_topics_to_their_end",
        "tests/integration/ops/test_console_roundtrip.py::test_cli_produce_then_consume_json_lines",
        "tests/integration/ops/test_console_roundtrip.py::test_produce_to_a_missing_topic_fails_with_one_line",
        "tests/integration/ops/test_console_roundtrip.py::test_thousand_records_with_keys_and_headers_come_back_intact",
        "tests/integration/ops/test_local_broker_lifecycle.py::test_invalid_broker_setting_is_reported_before_the_broker_starts",
        "tests/integration/cli/test_topics_and_schemas.py::test_topics_create_makes_plain_topics_with_their_configs",
        "tests/integration/cli/test_topics_and_schemas.py::test_produce_and_consume_with_schema_encode_and_decode_avro",
        "tests/integration/cli/test_topics_and_schemas.py::test_produce_with_schema_refuses_an_event_that_breaks_the_contract",
        "tests/integration/cli/test_topics_and_schemas.py::test_topics_create_checks_the_contracts_before_creating_anything",
        "tests/integration/test_app_client.py::test_an_app_is_fed_and_read_through_its_contracts",
        "tests/integration/security/test_field_encryption.py::test_pii_fields_are_ciphertext_on_the_wire_and_plaintext_in_the_processor",
    }
)
"""Tests on a real broker that ``make test`` runs (a name alone takes all its parameters)."""


def pytest_configure(config: pytest.Config) -> None:
    """Register ``full``; start the watchdog before any test starts a process."""
    config.addinivalue_line(
        "markers", "full: runs in make test-all only (see tests/conftest.py: QUICK)"
    )
    watch()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``full`` every test outside ``tests/unit`` that :data:`QUICK` does not name."""
    for item in items:
        if item.nodeid.startswith("tests/unit/"):
            continue
        if item.nodeid not in QUICK and item.nodeid.partition("[")[0] not in QUICK:
            item.add_marker(pytest.mark.full)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    """Remember that the test failed (in its setup or its call)."""
    report = yield
    if getattr(report, "failed", False):
        item.stash[_FAILED] = True
    return report


@pytest.fixture(autouse=True)
def _logs_of_a_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    """A failed test on a broker keeps its ``tmp_path``'s text files and the tails of the
    local brokers' logs in :data:`KEPT`."""
    if request.node.nodeid.startswith("tests/unit/"):
        yield
        return
    tmp: Path = request.getfixturevalue("tmp_path")
    began = time.time()
    yield
    if request.node.stash.get(_FAILED, False):
        _keep(request.node.nodeid, tmp, began)


def _keep(nodeid: str, tmp: Path, began: float) -> None:
    folder = KEPT / nodeid.replace("/", "_").replace("::", "__")[:200]
    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted(tmp.rglob("*")):
        if path.is_file() and path.suffix in {".log", ".txt", ".json", ".out", ".err"}:
            name = str(path.relative_to(tmp)).replace("/", "_")
            _tail(path, folder / name)
    brokers = [ROOT / ".streamkit", *Path(tempfile.gettempdir()).glob("streamkit-*")]
    for log in sorted(log for place in brokers for log in place.rglob("broker.log")):
        if log.stat().st_mtime >= began:  # a broker this test used
            name = "_".join(log.parent.parts[-2:])
            _tail(log, folder / f"{name}.broker.log")


def _tail(source: Path, target: Path) -> None:
    size = source.stat().st_size
    if size <= _KEEP_BYTES:
        shutil.copyfile(source, target)
        return
    with source.open("rb") as read, target.open("wb") as write:
        read.seek(size - _KEEP_BYTES)
        write.write(read.read())


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Name the folder of the failed tests' logs."""
    if KEPT.is_dir():
        kept = sorted(p.name for p in KEPT.iterdir())
        terminalreporter.write_line(
            f"logs of {len(kept)} failed test(s) kept in {KEPT.relative_to(ROOT)}/"
        )
