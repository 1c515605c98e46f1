"""The local three-node cluster: a quorum of three, app topics replicated three times with
min.insync.replicas 2, and `streamkit broker start --nodes 3 | status --cluster | stop
--cluster` from the command line."""

import os
import subprocess
import sys
from pathlib import Path

from confluent_kafka.admin import AdminClient

from streamkit.ops._local_process import free_ports
from streamkit.testing.brokers import ClusterTestBroker
from tests.integration.helpers import ROOT, create_app_topics


def test_app_topics_get_three_replicas_and_two_in_sync_on_the_cluster(
    kafka_cluster: ClusterTestBroker,
) -> None:
    env = {
        **os.environ,
        "STREAMKIT_BOOTSTRAP_SERVERS": kafka_cluster.bootstrap_servers,
        "PYTHONPATH": str(ROOT),
        "ECHO_INPUT": "cluster-in",
        "ECHO_OUTPUT": "cluster-out",
        "ECHO_GROUP": "cluster-echo",
        "ECHO_PARTITIONS": "3",
        "ECHO_DLQ": "1",
    }
    create_app_topics("tests.integration.apps.echo", env)
    admin = AdminClient({"bootstrap.servers": kafka_cluster.bootstrap_servers})
    metadata = admin.list_topics(timeout=10)
    assert len(metadata.brokers) == 3
    for topic in ("cluster-in", "cluster-out", "cluster-echo-cluster-in-dlq"):
        partitions = metadata.topics[topic].partitions.values()
        assert {len(p.replicas) for p in partitions} == {3}, topic
        assert len({p.leader for p in partitions}) > 1, f"{topic}: one node leads everything"


def test_the_cli_starts_reports_and_stops_a_cluster(tmp_path: Path) -> None:
    base = free_ports(3)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "streamkit", "broker", *args, "--data-dir", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )

    try:
        started = cli("start", "--nodes", "3", "--port", str(base))
        assert started.returncode == 0, started.stderr
        assert f"cluster of 3 nodes running at 127.0.0.1:{base},127.0.0.1:{base + 1}" in (
            started.stdout
        )
        status = cli("status", "--cluster")
        assert status.returncode == 0, status.stdout + status.stderr
        assert [line.split(":")[0] for line in status.stdout.splitlines()] == [
            "node 1",
            "node 2",
            "node 3",
        ]
    finally:
        stopped = cli("stop", "--cluster")
    assert stopped.returncode == 0
    assert stopped.stdout.startswith("stopped cluster nodes (pids ")
    after = cli("status", "--cluster")
    assert after.returncode == 3
    assert all("not running" in line for line in after.stdout.splitlines())
