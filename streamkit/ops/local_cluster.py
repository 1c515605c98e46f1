"""A local Kafka cluster: N KRaft nodes, each its own process, ports and data directory.

Every node is broker and controller at once, so three nodes make a quorum of three that
survives the loss of one. Topics get ``replication.factor`` N and ``min.insync.replicas``
N - 1, as in production. The cluster's layout (node ports, controller ports, cluster id)
is kept in ``cluster.json`` in its data directory, so ``stop``, ``status``, and a restart
of one node find it again.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

from streamkit.errors import BrokerError
from streamkit.ops._local_process import free_ports, pid_alive, port_in_use
from streamkit.ops.broker_config import LocalBrokerConfig
from streamkit.ops.local_broker import BrokerState, BrokerStatus, LocalBroker, new_cluster_id

__all__ = ["ClusterLayout", "LocalCluster"]

LAYOUT_FILE = "cluster.json"


@dataclass(frozen=True)
class ClusterLayout:
    """Where the nodes of a cluster listen, and the id their storage is formatted with."""

    ports: tuple[int, ...]
    controller_ports: tuple[int, ...]
    cluster_id: str
    host: str = "127.0.0.1"

    @property
    def voters(self) -> str:
        """``controller.quorum.voters`` of every node."""
        return ",".join(f"{i + 1}@{self.host}:{p}" for i, p in enumerate(self.controller_ports))

    @property
    def bootstrap_servers(self) -> str:
        """Every node's client address."""
        return ",".join(f"{self.host}:{p}" for p in self.ports)


class LocalCluster:
    """Start, stop and inspect the nodes of a local cluster living in ``data_dir``."""

    def __init__(
        self,
        data_dir: Path,
        cache_dir: Path,
        *,
        nodes: int = 3,
        port: int = 19092,
        heap: str = "384m",
        java_home: str = "",
        host: str = "127.0.0.1",
    ) -> None:
        if nodes < 1:
            raise BrokerError(f"a cluster needs at least one node, not {nodes}")
        self.data_dir = data_dir
        self.cache_dir = cache_dir
        self.nodes = nodes
        self.port = port
        self.heap = heap
        self.java_home = java_home
        self.host = host
        self.layout_path = data_dir / LAYOUT_FILE

    # -- layout -------------------------------------------------------------------------
    def layout(self) -> ClusterLayout | None:
        """The recorded layout, None before the first start."""
        try:
            raw = orjson.loads(self.layout_path.read_bytes())
        except FileNotFoundError:
            return None
        return ClusterLayout(
            tuple(raw["ports"]), tuple(raw["controller_ports"]), raw["cluster_id"], raw["host"]
        )

    def _new_layout(self) -> ClusterLayout:
        ports = tuple(self.port + i for i in range(self.nodes))
        busy = [p for p in ports if port_in_use(self.host, p)]
        if busy:
            raise BrokerError(
                f"ports {', '.join(map(str, busy))} on {self.host} are in use: stop what "
                "listens there or choose another base with --port"
            )
        first = free_ports(self.nodes, self.host)
        while first <= ports[-1] and ports[0] <= first + self.nodes - 1:
            first = free_ports(self.nodes, self.host)
        controllers = [first + i for i in range(self.nodes)]
        layout = ClusterLayout(ports, tuple(controllers), new_cluster_id(), self.host)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.layout_path.write_bytes(orjson.dumps(asdict(layout), option=orjson.OPT_INDENT_2))
        return layout

    def broker(self, node: int, layout: ClusterLayout | None = None) -> LocalBroker:
        """Node ``node`` (1-based) of the cluster."""
        layout = layout or self.layout()
        if layout is None:
            raise BrokerError(f"no cluster in {self.data_dir}: start it first")
        return LocalBroker(
            LocalBrokerConfig(
                data_dir=self.data_dir / f"node-{node}",
                cache_dir=self.cache_dir,
                port=layout.ports[node - 1],
                controller_port=layout.controller_ports[node - 1],
                heap=self.heap,
                java_home=self.java_home,
                node_id=node,
                voters=layout.voters,
                replication=min(3, len(layout.ports)),
                cluster_id=layout.cluster_id,
                host=layout.host,
            )
        )

    @staticmethod
    def _numbers(layout: ClusterLayout) -> range:
        return range(1, len(layout.ports) + 1)

    # -- lifecycle ------------------------------------------------------------------------
    def start(self, *, timeout: float = 120.0) -> list[BrokerState]:
        """Start every node that is not running, together, and wait until all answer."""
        layout = self.layout() or self._new_layout()
        brokers = [self.broker(n, layout) for n in self._numbers(layout)]
        launched = [b.launch() for b in brokers]
        states: list[BrokerState] = []
        try:
            for broker, launch in zip(brokers, launched, strict=True):
                states.append(
                    launch
                    if isinstance(launch, BrokerState)
                    else broker.await_ready(launch, timeout)
                )
        except BaseException:
            self.stop()
            raise
        return states

    def start_node(self, node: int, *, timeout: float = 120.0) -> BrokerState:
        """Start one node again (the others must be running for it to answer)."""
        return self.broker(node).start(timeout=timeout)

    def kill(self, node: int) -> int:
        """SIGKILL node ``node`` (a crash, for failover tests); its pid."""
        state = self.broker(node).read_state()
        if state is None:
            raise BrokerError(f"node {node} of the cluster in {self.data_dir} is not running")
        with contextlib.suppress(ProcessLookupError):
            os.kill(state.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and pid_alive(state.pid):
            time.sleep(0.05)
        return state.pid

    def stop(self, *, timeout: float = 30.0) -> list[BrokerStatus]:
        """Stop every node (SIGTERM, then SIGKILL after ``timeout``), all at once: one by
        one, the last nodes would wait for a quorum that is gone."""
        layout = self.layout()
        if layout is None:
            return []
        brokers = [self.broker(n, layout) for n in self._numbers(layout)]
        with ThreadPoolExecutor(max_workers=len(brokers)) as pool:
            return list(pool.map(lambda b: b.stop(timeout=timeout), brokers))

    def status(self) -> list[BrokerStatus]:
        """Each node's status (empty before the first start)."""
        layout = self.layout()
        if layout is None:
            return []
        return [self.broker(n, layout).status() for n in self._numbers(layout)]

    @property
    def bootstrap_servers(self) -> str:
        """Every node's address, for clients."""
        layout = self.layout()
        if layout is None:
            raise BrokerError(f"no cluster in {self.data_dir}: start it first")
        return layout.bootstrap_servers
