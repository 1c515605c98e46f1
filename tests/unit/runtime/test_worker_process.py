"""The worker process freezes what it built before the hot loop, so a full garbage
collection does not scan the modules, the app and the clients on every pass (regression:
40-47 ms pauses in the hot loop that set the p99 latency of the benchmark)."""

import gc

import pytest

from streamkit.engines.kafka import WorkerOptions
from streamkit.host import worker as worker_process


class _Worker:
    """Stands in for KafkaWorker: records how many objects were frozen when it ran."""

    frozen_at_run = -1

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def check_topics(self) -> None:
        pass

    def run(self) -> None:
        _Worker.frozen_at_run = gc.get_freeze_count()


def test_the_startup_heap_is_frozen_before_the_loop_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_process, "KafkaWorker", _Worker)
    monkeypatch.setattr(worker_process, "_install_signals", lambda *args: None)
    monkeypatch.setenv("STREAMKIT_BOOTSTRAP_SERVERS", "127.0.0.1:9")
    try:
        code = worker_process.run_worker(
            "tests.integration.apps.echo",
            WorkerOptions(),
            worker_process.ProcessOptions(http_port=0),
        )
    finally:
        gc.unfreeze()
    assert code == 0
    assert _Worker.frozen_at_run > 10_000  # the imported modules' objects, at least
