"""The local broker itself: cached jars, start, status, stop, and a broker that dies."""

import os
import shutil
from pathlib import Path

import pytest

from streamkit.errors import BrokerError
from streamkit.ops import _kafka_dist as dist
from streamkit.ops.local_broker import LocalBroker, LocalBrokerConfig, admin_answers, free_port
from streamkit.settings import Settings

pytestmark = pytest.mark.slow


def _kafka_processes(properties: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"kafka.Kafka" in argv and str(properties).encode() in argv:
            found.append(int(entry.name))
    return found


@pytest.fixture
def path_without_maven(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    java = shutil.which("java")
    assert java is not None
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "java").symlink_to(os.path.realpath(java))
    monkeypatch.setenv("PATH", str(bin_dir))


def test_second_start_reuses_cached_jars_and_stop_leaves_no_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings.from_env()
    pom = dist.find_pom()
    dist.ensure_jars(settings.cache_dir, pom)  # first use may fetch; later ones must not
    java = shutil.which("java")
    assert java is not None
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "java").symlink_to(os.path.realpath(java))
    monkeypatch.setenv("PATH", str(bin_dir))  # no mvn reachable from here on

    port = free_port()
    broker = LocalBroker(
        LocalBrokerConfig(data_dir=tmp_path / "data", cache_dir=settings.cache_dir, port=port)
    )
    try:
        state = broker.start(timeout=120)
        assert not broker.jars_downloaded
        assert broker.status().running
        assert admin_answers(state.bootstrap_servers)
        assert broker.start().pid == state.pid  # starting again finds the running one
        assert _kafka_processes(broker.properties_path) == [state.pid]
    finally:
        stopped = broker.stop()
    assert stopped.running
    assert _kafka_processes(broker.properties_path) == []
    assert not broker.state_path.exists()
    assert not broker.status().running
    assert not admin_answers(f"127.0.0.1:{port}", timeout=1)


def test_broker_that_exits_during_start_reports_the_tail_of_its_log(tmp_path: Path) -> None:
    settings = Settings.from_env()
    broker = LocalBroker(
        LocalBrokerConfig(
            data_dir=tmp_path / "data",
            cache_dir=settings.cache_dir,
            port=free_port(),
            extra={"authorizer.class.name": "org.example.NoSuchAuthorizer"},
        )
    )
    with pytest.raises(BrokerError) as caught:
        broker.start(timeout=120)
    message = str(caught.value)
    assert message.startswith("broker exited during start (exit code")
    assert "NoSuchAuthorizer" in message  # the log tail names the cause
    assert _kafka_processes(broker.properties_path) == []
    assert not broker.state_path.exists()


def test_invalid_broker_setting_is_reported_before_the_broker_starts(tmp_path: Path) -> None:
    settings = Settings.from_env()
    broker = LocalBroker(
        LocalBrokerConfig(
            data_dir=tmp_path / "data",
            cache_dir=settings.cache_dir,
            port=free_port(),
            extra={"log.retention.bytes": "not-a-number"},
        )
    )
    with pytest.raises(BrokerError, match=r"formatting KRaft storage .* failed: .*log.retention"):
        broker.start(timeout=120)
    assert not broker.state_path.exists()
