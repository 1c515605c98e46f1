"""Workers on three "hosts" (network namespaces on a bridge) join one consumer group on a
three-node cluster; one whole host dies; its partitions move to the others and nothing is
lost."""

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from streamkit.ops._local_process import free_ports
from streamkit.ops.local_cluster import LocalCluster
from streamkit.settings import Settings
from tests.integration.cluster.netns import Network, require_namespaces
from tests.integration.helpers import ROOT, create_app_topics, read_all
from tests.integration.runtime.conftest import wait_for

PARTITIONS = 6
RECORDS = 6000
WORKER = [
    sys.executable,
    "-m",
    "streamkit",
    "run",
    "tests.integration.apps.echo",
    "--commit-interval",
    "0.2",
]


@pytest.fixture
def network() -> Iterator[Network]:
    require_namespaces()
    with Network(3) as net:
        yield net


@pytest.fixture
def cluster(network: Network) -> Iterator[LocalCluster]:
    data = Path(tempfile.mkdtemp(prefix="streamkit-hosts-cluster-"))
    base = free_ports(3, network.gateway)
    cluster = LocalCluster(
        data, Settings.from_env().cache_dir, nodes=3, port=base, host=network.gateway
    )
    try:
        cluster.start(timeout=180)
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(data, ignore_errors=True)


def test_a_dead_host_s_partitions_move_to_the_others_and_nothing_is_lost(
    network: Network, cluster: LocalCluster
) -> None:
    bootstrap = cluster.bootstrap_servers
    config = {"bootstrap.servers": bootstrap}
    env = {
        **os.environ,
        "STREAMKIT_BOOTSTRAP_SERVERS": bootstrap,
        "PYTHONPATH": str(ROOT),
        "ECHO_INPUT": "hosts-in",
        "ECHO_OUTPUT": "hosts-out",
        "ECHO_GROUP": "hosts",
        "ECHO_PARTITIONS": str(PARTITIONS),
        "ECHO_DELAY_MS": "3",
        "STREAMKIT_KAFKA_CONSUMER_SESSION_TIMEOUT_MS": "6000",
    }
    create_app_topics("tests.integration.apps.echo", env)
    runs = [network.run(host, WORKER, env=env, cwd=ROOT) for host in network.hosts]
    # No admin requests here: librdkafka's admin client aborted this process (an
    # assertion in rd_kafka_enq_once) while the coordinator was still loading.
    producer = Producer({**config, "enable.idempotence": True, "linger.ms": 5})
    for n in range(RECORDS):
        producer.produce("hosts-in", orjson.dumps({"n": n}), f"k{n % 97}".encode())
    assert producer.flush(60) == 0

    def pids() -> set[int]:
        return {orjson.loads(m.value())["pid"] for m in read_all(config, "hosts-out")}

    wait_for(lambda: len(pids()) == 3, 120, "work done on every host")
    dead = network.hosts[1]
    killed = set(network.kill_host(dead))
    assert killed, "nothing ran on the host"
    killed_at = time.monotonic()
    wait_for(lambda: _caught_up(config), 120, "the survivors to finish its partitions")
    recovered = time.monotonic() - killed_at
    for run in runs:
        if run.poll() is None:
            run.terminate()
            run.wait(timeout=60)

    done = [orjson.loads(m.value()) for m in read_all(config, "hosts-out")]
    assert {d["n"] for d in done} == set(range(RECORDS))  # nothing lost
    assert len({d["pid"] for d in done} - killed) == 2  # the two survivors did the rest
    print(
        f"host {dead.address} killed ({len(killed)} processes); its partitions done by the "
        f"others {recovered:.1f}s later; {len(done) - RECORDS} duplicates"
    )


def _caught_up(config: dict[str, str]) -> bool:
    consumer = Consumer({**config, "group.id": "hosts", "enable.auto.commit": False})
    try:
        parts = [TopicPartition("hosts-in", p) for p in range(PARTITIONS)]
        committed = {tp.partition: tp.offset for tp in consumer.committed(parts, timeout=10)}
        return all(
            committed.get(p, -1) >= consumer.get_watermark_offsets(tp, timeout=10)[1]
            for p, tp in enumerate(parts)
        )
    finally:
        consumer.close()
