"""A local Kafka Connect worker (standalone) running Debezium's PostgreSQL connector:
Kafka Connect's and Debezium's jars from Maven Central (``deploy/connect/pom.xml``),
started and stopped like the local broker (``streamkit connect start|stop|status``).

Connector files are Kafka Connect's ``.properties``; ``${env:NAME}`` in them is read from
the environment (the worker declares the ``env`` config provider), so one file fits any
port or database. The worker writes JSON without embedded schemas (what ``debezium``
topics read), keeps its source offsets in its state directory, and answers its REST API
on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from streamkit.errors import BrokerError
from streamkit.ops._kafka_dist import ensure_jars, find_java, find_pom
from streamkit.ops._local_process import running_state, terminate
from streamkit.ops.connect_rest import await_running, connector_states, read_connector

__all__ = ["DEFAULT_REST_PORT", "ConnectInfo", "LocalConnect", "connector_name"]

DEFAULT_REST_PORT = 8083
_MAIN = "org.apache.kafka.connect.cli.ConnectStandalone"


def connector_name(path: Path) -> str:
    """The ``name=`` of a connector file."""
    return read_connector(path)["name"]


@dataclass(frozen=True)
class ConnectInfo:
    """A running local Connect worker."""

    pid: int
    rest_port: int
    connectors: tuple[str, ...]

    @property
    def url(self) -> str:
        """Its REST API."""
        return f"http://127.0.0.1:{self.rest_port}"


class LocalConnect:
    """The local Connect worker whose state lives in ``state_dir``."""

    def __init__(self, state_dir: Path, cache_dir: Path, rest_port: int = DEFAULT_REST_PORT):
        self.state_dir = state_dir
        self.cache_dir = cache_dir
        self.rest_port = rest_port
        self.log = state_dir / "connect.log"
        self._state = state_dir / "connect.json"

    def info(self) -> ConnectInfo | None:
        """The running worker this state directory started (None: none runs)."""
        doc = running_state(self._state)
        return (
            None
            if doc is None
            else ConnectInfo(int(doc["pid"]), int(doc["rest_port"]), tuple(doc["connectors"]))
        )

    def start(
        self,
        bootstrap: str,
        connectors: list[Path],
        env: dict[str, str] | None = None,
        timeout: float = 180,
    ) -> ConnectInfo:
        """Start the worker with ``connectors`` and wait until each one's tasks run."""
        running = self.info()
        if running is not None:
            raise BrokerError(
                f"a Connect worker already runs from {self.state_dir} "
                f"(pid {running.pid}): stop it first"
            )
        names = tuple(connector_name(path) for path in connectors)
        java = find_java(os.environ.get("JAVA_HOME", ""))
        lib, _ = ensure_jars(self.cache_dir, find_pom("connect"), expect="connect-runtime-")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        worker = self.state_dir / "worker.properties"
        worker.write_text(self._worker_properties(bootstrap))
        command = [
            java.path,
            "-Xmx512m",
            "-cp",
            f"{lib}/*",
            _MAIN,
            str(worker),
            *(str(path.resolve()) for path in connectors),
        ]
        with self.log.open("ab") as log:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )
        info = ConnectInfo(process.pid, self.rest_port, names)
        self._state.write_text(
            json.dumps({"pid": process.pid, "rest_port": self.rest_port, "connectors": list(names)})
        )
        try:
            self._await_running(info, process, timeout)
        except BaseException:
            self.stop()
            raise
        return info

    def _worker_properties(self, bootstrap: str) -> str:
        offsets = self.state_dir / "offsets.dat"
        return "\n".join(
            [
                f"bootstrap.servers={bootstrap}",
                "key.converter=org.apache.kafka.connect.json.JsonConverter",
                "value.converter=org.apache.kafka.connect.json.JsonConverter",
                "key.converter.schemas.enable=false",
                "value.converter.schemas.enable=false",
                f"offset.storage.file.filename={offsets}",
                "offset.flush.interval.ms=1000",
                f"listeners=http://127.0.0.1:{self.rest_port}",
                "config.providers=env",
                "config.providers.env.class="
                "org.apache.kafka.common.config.provider.EnvVarConfigProvider",
                "",
            ]
        )

    def _await_running(
        self, info: ConnectInfo, process: subprocess.Popen[bytes], timeout: float
    ) -> None:
        def gone() -> str | None:
            if process.poll() is None:
                return None
            return (
                f"Kafka Connect exited {process.returncode} while starting: "
                f"{' | '.join(self._log_tail(4))} (log {self.log})"
            )

        try:
            await_running(info.url, info.connectors, timeout, gone)
        except BrokerError as exc:
            raise BrokerError(f"{exc} (log {self.log})") from None

    def states(self, info: ConnectInfo) -> dict[str, str] | None:
        """Each connector's state (None: the REST API does not answer)."""
        return connector_states(info.url, info.connectors)

    def stop(self, grace: float = 30) -> bool:
        """Stop the worker (its offsets are flushed on the way); whether one ran."""
        running = self.info()
        if running is None:
            self._state.unlink(missing_ok=True)
            return False
        terminate(running.pid, grace)
        self._state.unlink(missing_ok=True)
        return True

    def _log_tail(self, lines: int) -> list[str]:
        try:
            return self.log.read_text(errors="replace").strip().splitlines()[-lines:]
        except OSError:
            return []
