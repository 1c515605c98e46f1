"""A worker's HTTP endpoints answer on loopback unless told otherwise: ``/state`` serves
the app's state to whoever can connect."""

import time
from types import SimpleNamespace

from click.testing import CliRunner

from streamkit.cli.main import cli
from streamkit.host.worker import ProcessOptions
from streamkit.observability.http import WorkerHttpServer
from streamkit.observability.metrics import PrometheusMetrics


def test_the_http_server_binds_loopback_by_default() -> None:
    worker = SimpleNamespace(
        app=SimpleNamespace(name="a"), options=SimpleNamespace(worker_id="0"), assigned=set(),
        blocked_partitions=0, last_poll=time.monotonic(), lag={},
    )  # fmt: skip
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
