"""A worker's HTTP endpoints answer on loopback unless told otherwise: ``/state`` serves
the app's state to whoever can connect."""

import time
from types import SimpleNamespace

from click.testing import CliRunner

from streamkit.cli.main import cli
from streamkit.host.worker import ProcessOptions
from streamkit.observability.http import WorkerHttpServer
from streamkit.observability.metrics import PrometheusMetrics, WorkerCollector


def test_the_http_server_binds_loopback_by_default() -> None:
    worker = SimpleNamespace(
        app=SimpleNamespace(name="a"),
        options=SimpleNamespace(worker_id="0", restarts=0),
        assigned=set(),
        blocked_partitions=0,
        restoring=0,
        restored_records=0,
        last_poll=time.monotonic(),
        lag={},
        concurrency_stats={},
        unmatched={},
    )
    server = WorkerHttpServer(worker, PrometheusMetrics("a", "0"), 0)  # type: ignore[arg-type]
    try:
        assert server.httpd.server_address[0] == "127.0.0.1"
    finally:
        server.httpd.server_close()
    assert ProcessOptions().http_host == "127.0.0.1"


def test_streamkit_run_documents_the_loopback_default() -> None:
    shown = CliRunner().invoke(cli, ["run", "--help"], terminal_width=200)
    assert "--http-host TEXT" in shown.output
    assert "[default: 127.0.0.1]" in shown.output


def test_the_worker_shows_concurrent_calls_and_records_kept_by_patterns() -> None:
    worker = SimpleNamespace(
        app=SimpleNamespace(name="a"),
        options=SimpleNamespace(worker_id="0", restarts=0),
        assigned=set(),
        blocked_partitions=0,
        restoring=0,
        restored_records=0,
        last_poll=time.monotonic(),
        lag={},
        concurrency_stats={"send": (200, 1500)},
        unmatched={"send": 7},
    )
    gauges = {m.name: m.samples for m in WorkerCollector(worker).collect()}  # type: ignore[arg-type]
    (calls,) = gauges["streamkit_concurrent_calls"]
    (pending,) = gauges["streamkit_concurrent_pending"]
    assert calls.labels == {"app": "a", "worker": "0", "processor": "send"}
    assert (calls.value, pending.value) == (200, 1500)
    (unmatched,) = gauges["streamkit_records_unmatched"]
    assert unmatched.name == "streamkit_records_unmatched_total"
    assert unmatched.value == 7
