"""The local broker launcher: generated config and each of its clear errors."""

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from streamkit.cli.main import cli
from streamkit.errors import BrokerError
from streamkit.ops import _kafka_dist as dist
from streamkit.ops.local_broker import (
    STATE_FILE,
    LocalBroker,
    LocalBrokerConfig,
    min_heap,
    render_properties,
)


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def test_generated_config_is_one_kraft_node_on_loopback_with_test_settings(tmp_path: Path) -> None:
    config = LocalBrokerConfig(data_dir=tmp_path, cache_dir=tmp_path / "cache", port=19092)
    props = _props(render_properties(config, controller_port=19093))
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["log.dirs"] == str(tmp_path / "kraft-logs")
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.replication.factor",
    ):
        assert props[key] == "1", key
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert "0.0.0.0" not in render_properties(config, 19093)


def test_extra_properties_override_the_defaults(tmp_path: Path) -> None:
    config = LocalBrokerConfig(
        data_dir=tmp_path, cache_dir=tmp_path, extra={"num.partitions": "8", "x.y": "z"}
    )
    props = _props(render_properties(config, 1))
    assert props["num.partitions"] == "8"
    assert props["x.y"] == "z"


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('java version "1.8.0_392"', 8),
        ('openjdk version "21" 2023-09-19', 21),
    ],
)
def test_java_major_version_is_parsed_from_java_version_output(output: str, major: int) -> None:
    assert dist.parse_java_major(output) == major


def test_initial_heap_is_half_the_maximum() -> None:
    assert min_heap("512m") == "256m"
    assert min_heap("2g") == "1024m"
    assert min_heap("100m") == "64m"


def _fake_java(directory: Path, version: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    java = directory / "java"
    java.write_text(f"#!/bin/sh\necho 'openjdk version \"{version}\" 2018-10-16' >&2\n")
    java.chmod(java.stat().st_mode | stat.S_IXUSR)
    return java


def test_no_java_on_path_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BrokerError, match=r"Java not found: the local broker needs Java 17"):
        dist.find_java("")


def test_java_home_without_java_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BrokerError, match=r"JAVA_HOME=.* has no bin/java"):
        dist.find_java(str(tmp_path))


def test_java_older_than_17_is_refused(tmp_path: Path) -> None:
    _fake_java(tmp_path / "bin", "11.0.2")
    with pytest.raises(BrokerError, match=r"Java 11 at .* is too old: .* needs Java 17"):
        dist.find_java(str(tmp_path))


def test_no_maven_and_no_cached_jars_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(BrokerError, match=r"Maven \(mvn\) not found and no cached Kafka jars"):
        dist.ensure_jars(tmp_path / "cache", dist.find_pom())


def test_cached_jars_are_keyed_by_the_pom_and_need_no_maven(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pom = dist.find_pom()
    lib = dist.jars_dir(tmp_path, pom)
    lib.mkdir(parents=True)
    (lib / ".complete").write_text("done")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert dist.ensure_jars(tmp_path, pom) == (lib, False)


def test_port_in_use_is_refused_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        broker = LocalBroker(LocalBrokerConfig(data_dir=tmp_path, cache_dir=tmp_path, port=port))
        with pytest.raises(BrokerError, match=rf"port {port} on 127.0.0.1 is in use"):
            broker.start(timeout=5)
    assert not (tmp_path / STATE_FILE).exists()


def _write_state(data_dir: Path, pid: int) -> None:
    state = {
        "pid": pid,
        "port": 1,
        "controller_port": 2,
        "data_dir": str(data_dir),
        "log": str(data_dir / "broker.log"),
        "properties": str(data_dir / "server.properties"),
        "kafka_version": "4.3.1",
        "started_at": 0.0,
    }
    (data_dir / STATE_FILE).write_bytes(orjson.dumps(state))


def _dead_pid() -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def test_stale_state_file_is_reported_by_status_and_cleared_by_stop(tmp_path: Path) -> None:
    _write_state(tmp_path, _dead_pid())
    runner = CliRunner()
    result = runner.invoke(cli, ["broker", "status", "--data-dir", str(tmp_path)])
    assert result.exit_code == 4
    assert "stale state file" in result.output
    result = runner.invoke(cli, ["broker", "stop", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0
    assert "not running; removed stale state file" in result.output
    assert not (tmp_path / STATE_FILE).exists()


def test_a_pid_that_is_not_our_broker_counts_as_stale(tmp_path: Path) -> None:
    _write_state(tmp_path, os.getpid())  # alive, but this is pytest, not kafka.Kafka
    status = LocalBroker(LocalBrokerConfig(data_dir=tmp_path, cache_dir=tmp_path)).status()
    assert status.stale
    assert not status.running


def test_status_without_a_state_file_says_not_running(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["broker", "status", "--data-dir", str(tmp_path)])
    assert result.exit_code == 3
    assert "not running" in result.output


def test_cli_errors_are_one_line_on_stderr(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path), "JAVA_HOME": ""}
    done = subprocess.run(
        [sys.executable, "-m", "streamkit", "broker", "start", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: Java not found: the local broker needs Java 17 or newer on PATH (or JAVA_HOME)"
    ]


class _Done:
    returncode = 0
    stdout = stderr = ""


@pytest.fixture
def commands(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The commands the local broker runs (StorageTool, FeatureCommand), not run."""
    seen: list[list[str]] = []

    def fake_run(command: list[str], **kwargs: object) -> _Done:
        seen.append(command)
        return _Done()

    monkeypatch.setattr("streamkit.ops.local_broker.subprocess.run", fake_run)
    return seen


def test_a_cluster_id_starting_with_a_dash_is_passed_as_one_argument(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, commands: list[list[str]]
) -> None:
    """urlsafe base64 ids may start with "-": argparse must not take them for an option."""
    monkeypatch.setattr("streamkit.ops.local_broker.os.urandom", lambda n: b"\xfb" * n)
    broker = LocalBroker(LocalBrokerConfig(data_dir=tmp_path, cache_dir=tmp_path))
    assert broker._format_storage("java", "lib/*", tmp_path / "log4j2.properties", "4.3.1")
    (command,) = commands
    cluster = next(arg for arg in command if arg.startswith("--cluster-id="))
    assert cluster.startswith("--cluster-id=-")


def test_storage_remembers_the_kafka_that_formatted_it(
    tmp_path: Path, commands: list[list[str]]
) -> None:
    """A broker formatted by an older Kafka (no marker, or another version) has its
    features upgraded after its start; one formatted by this one does not."""
    calls = commands
    broker = LocalBroker(LocalBrokerConfig(data_dir=tmp_path, cache_dir=tmp_path))
    log4j = tmp_path / "log4j2.properties"
    assert broker._format_storage("java", "lib/*", log4j, "4.3.1") == "4.3.1"
    (tmp_path / "kraft-logs").mkdir()
    (tmp_path / "kraft-logs" / "meta.properties").write_text("formatted\n")
    assert broker._format_storage("java", "lib/*", log4j, "4.3.1") == "4.3.1"
    assert len(calls) == 1  # formatted once
    (tmp_path / "formatted-by-kafka").unlink()
    assert broker._format_storage("java", "lib/*", log4j, "4.3.1") is None
    broker._upgrade_features("java", "lib/*", log4j, "4.3.1")
    assert calls[-1][-3:] == ["upgrade", "--release-version", "4.3"]
    assert (tmp_path / "formatted-by-kafka").read_text() == "4.3.1"


def test_a_secure_broker_demands_tls_scram_and_acls_and_keeps_its_password_private(
    tmp_path: Path,
) -> None:
    config = LocalBrokerConfig(data_dir=tmp_path, cache_dir=tmp_path, port=9093, secure=True)
    files = config.secure_files
    assert files is not None
    props = dict(
        line.split("=", 1) for line in render_properties(config, 9999).splitlines() if line
    )
    assert props["listeners"] == "SASL_SSL://127.0.0.1:9093,CONTROLLER://127.0.0.1:9999"
    assert props["listener.security.protocol.map"] == "CONTROLLER:SSL,SASL_SSL:SASL_SSL"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == "User:admin;User:streamkit-broker"
    assert props["listener.name.controller.ssl.client.auth"] == "required"
    password = files.password()
    assert len(password) >= 24
    assert files.admin_password.stat().st_mode & 0o777 == 0o600
    assert files.broker_pem.stat().st_mode & 0o777 == 0o600
    env = files.write_client_env("127.0.0.1:9093").read_text()
    assert password not in env
    assert f"STREAMKIT_KAFKA_SASL_PASSWORD_FILE={files.admin_password}" in env
    assert config.secure_files == files  # made once, then kept (the storage holds it)
    assert files.password() == password


def test_a_cluster_node_names_its_quorum_and_replicates_three_times(tmp_path: Path) -> None:
    config = LocalBrokerConfig(
        data_dir=tmp_path,
        cache_dir=tmp_path,
        port=19093,
        node_id=2,
        replication=3,
        voters="1@127.0.0.1:5001,2@127.0.0.1:5002,3@127.0.0.1:5003",
        cluster_id="abc",
    )
    props = dict(
        line.split("=", 1) for line in render_properties(config, 5002).splitlines() if line
    )
    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:5001,2@127.0.0.1:5002,3@127.0.0.1:5003"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19093,CONTROLLER://127.0.0.1:5002"
    for key in (
        "default.replication.factor",
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "share.coordinator.state.topic.replication.factor",
    ):
        assert props[key] == "3", key
    assert props["min.insync.replicas"] == "2"
    assert props["transaction.state.log.min.isr"] == "2"
