"""A real Apache Kafka broker on this machine, from Maven Central jars, in KRaft mode.

One node is broker and controller at once, listening on 127.0.0.1 only, with settings
for tests and demos (replication factor 1, no initial rebalance delay, a 512 MB heap).
``start`` writes a state file in the data directory so that ``stop`` and ``status`` find
the process later, from another shell.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from streamkit.errors import BrokerError
from streamkit.ops import _kafka_dist as dist
from streamkit.ops._local_process import (
    free_port,
    is_our_broker,
    pid_alive,
    port_in_use,
    terminate,
)
from streamkit.ops.broker_config import LocalBrokerConfig, render_properties

__all__ = [
    "BrokerState",
    "Launch",
    "LocalBroker",
    "LocalBrokerConfig",
    "free_port",
    "new_cluster_id",
    "render_properties",
]

log = logging.getLogger("streamkit.broker")

STATE_FILE = "streamkit-broker.json"
LOG_FILE = "broker.log"
_LOG4J = """\
rootLogger.level=INFO
rootLogger.appenderRef.out.ref=OUT
appender.out.type=Console
appender.out.name=OUT
appender.out.layout.type=PatternLayout
appender.out.layout.pattern=[%d] %p %m (%c)%n
logger.kafka.name=kafka
logger.kafka.level=INFO
logger.state.name=state.change.logger
logger.state.level=WARN
logger.cleaner.name=kafka.log.LogCleaner
logger.cleaner.level=INFO
"""


def new_cluster_id() -> str:
    """A random KRaft cluster id (16 bytes, URL-safe base64, as ``kafka-storage random-uuid``)."""
    return base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()


@dataclass(frozen=True)
class Launch:
    """A broker process started and not yet known to answer."""

    process: subprocess.Popen[bytes]
    state: BrokerState
    tools: tuple[str, str, Path]  # java, classpath, log4j configuration
    formatted_by: str | None


@dataclass(frozen=True)
class BrokerState:
    """What the state file records about a started broker."""

    pid: int
    port: int
    controller_port: int
    data_dir: str
    log: str
    properties: str
    kafka_version: str
    started_at: float
    secure: bool = False
    host: str = "127.0.0.1"

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` for clients."""
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class BrokerStatus:
    """The answer of :meth:`LocalBroker.status`."""

    state: BrokerState | None
    running: bool
    stale: bool
    message: str


class LocalBroker:
    """Start, stop and inspect one local broker living in ``config.data_dir``."""

    def __init__(self, config: LocalBrokerConfig) -> None:
        self.config = config
        self.data_dir = config.data_dir
        self.state_path = config.data_dir / STATE_FILE
        self.log_path = config.data_dir / LOG_FILE
        self.properties_path = config.data_dir / "server.properties"
        self.jars_downloaded = False

    # -- state file ---------------------------------------------------------------------
    def read_state(self) -> BrokerState | None:
        """The recorded state, or None when there is no (readable) state file."""
        try:
            raw = orjson.loads(self.state_path.read_bytes())
            return BrokerState(**raw)
        except FileNotFoundError:
            return None
        except (orjson.JSONDecodeError, TypeError) as exc:
            raise BrokerError(f"unreadable state file {self.state_path}: {exc}; delete it") from exc

    def status(self) -> BrokerStatus:
        """Whether the broker of this data directory runs, with a one-line description."""
        state = self.read_state()
        if state is None:
            return BrokerStatus(None, False, False, f"not running (no state in {self.data_dir})")
        if pid_alive(state.pid) and is_our_broker(state.pid, Path(state.properties)):
            return BrokerStatus(
                state,
                True,
                False,
                f"running: pid {state.pid}, {state.bootstrap_servers}"
                f"{' (SASL_SSL, ACLs)' if state.secure else ''}, Kafka "
                f"{state.kafka_version}, log {state.log}",
            )
        return BrokerStatus(
            state,
            False,
            True,
            f"stale state file {self.state_path}: pid {state.pid} is not a running broker",
        )

    # -- start --------------------------------------------------------------------------
    def start(self, *, timeout: float = 90.0, foreground: bool = False) -> BrokerState:
        """Start the broker and wait until its admin API answers.

        Returns the running broker's state; when it already runs, returns that one.
        With ``foreground=True`` the broker's log goes to this terminal and the call
        returns only after the broker exits (its state file is removed then).
        """
        launched = self.launch(foreground=foreground)
        if isinstance(launched, BrokerState):
            return launched
        return self.await_ready(launched, timeout)

    def launch(self, *, foreground: bool = False) -> Launch | BrokerState:
        """Format the storage if needed and start the broker process without waiting for
        it (the nodes of a cluster start together: none answers before the quorum forms);
        the state of a broker already running, or of a foreground one once it exited."""
        current = self.status()
        if current.running and current.state is not None:
            return current.state
        if current.stale:
            self.state_path.unlink(missing_ok=True)
        cfg = self.config
        java = dist.find_java(cfg.java_home)
        if port_in_use(cfg.host, cfg.port):
            raise BrokerError(
                f"port {cfg.port} on {cfg.host} is in use: stop what listens there "
                "or choose another with --port"
            )
        pom = dist.find_pom()
        lib, self.jars_downloaded = dist.ensure_jars(cfg.cache_dir, pom)
        controller_port = cfg.controller_port or free_port(cfg.host)
        if port_in_use(cfg.host, controller_port):
            raise BrokerError(f"controller port {controller_port} on {cfg.host} is in use")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.properties_path.touch(0o600)  # it holds the admin password when secure
        self.properties_path.write_text(render_properties(cfg, controller_port))
        log4j = self.data_dir / "log4j2.properties"
        log4j.write_text(_LOG4J)
        classpath = f"{lib}/*"
        formatted_by = self._format_storage(java.path, classpath, log4j, dist.kafka_version(pom))
        command = [
            java.path,
            f"-Xms{min_heap(cfg.heap)}",
            f"-Xmx{cfg.heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            classpath,
            "kafka.Kafka",
            str(self.properties_path),
        ]
        if foreground:
            return self._run_foreground(command, controller_port, pom)
        with self.log_path.open("ab") as log:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,
            )
        state = self._write_state(process.pid, controller_port, pom)
        return Launch(process, state, (java.path, classpath, log4j), formatted_by)

    def await_ready(self, launch: Launch, timeout: float = 90.0) -> BrokerState:
        """Wait until a launched broker answers (its quorum formed); on failure stop it."""
        process, state = launch.process, launch.state
        try:
            self._wait_ready(process, timeout)
        except BaseException:
            terminate(process.pid, grace=10.0)
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                process.wait(timeout=5)
            self.state_path.unlink(missing_ok=True)
            raise
        if launch.formatted_by != state.kafka_version and not self.config.secure:
            self._upgrade_features(*launch.tools, state.kafka_version)
        return state

    def _upgrade_features(self, java: str, classpath: str, log4j: Path, version: str) -> None:
        """Finalise this release's features (share groups among them) on storage an older
        Kafka formatted; the broker keeps working on the old ones when this fails."""
        release = ".".join(version.split(".")[:2])
        done = subprocess.run(
            [
                java,
                "-Xmx256m",
                f"-Dlog4j2.configurationFile={log4j}",
                "-cp",
                classpath,
                "org.apache.kafka.tools.FeatureCommand",
                "--bootstrap-server",
                f"{self.config.host}:{self.config.port}",
                "upgrade",
                "--release-version",
                release,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode == 0:
            self._formatted_by.write_text(version)
        else:
            log.warning(
                "could not upgrade the broker's features to %s: %s",
                release,
                (done.stderr or done.stdout).strip().splitlines()[-1:],
            )

    @property
    def _formatted_by(self) -> Path:
        return self.data_dir / "formatted-by-kafka"

    def _format_storage(self, java: str, classpath: str, log4j: Path, version: str) -> str | None:
        """Format the storage unless it is; the Kafka version whose features it has
        (None: formatted before streamkit recorded it)."""
        if (self.data_dir / "kraft-logs" / "meta.properties").is_file():
            marker = self._formatted_by
            return marker.read_text().strip() if marker.is_file() else None
        cluster_id = self.config.cluster_id or new_cluster_id()
        files = self.config.secure_files
        command = [
            java,
            "-Xmx256m",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            classpath,
            "kafka.tools.StorageTool",
            "format",
            f"--cluster-id={cluster_id}",
            "-c",
            str(self.properties_path),
            *(files.format_arguments() if files else []),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            lines = (done.stdout + done.stderr).strip().splitlines()
            causes = [ln.strip() for ln in lines if not ln.startswith(("\t", " "))]
            raise BrokerError(
                f"formatting KRaft storage in {self.data_dir} failed: {' | '.join(causes[-3:])}"
            )
        self._formatted_by.parent.mkdir(parents=True, exist_ok=True)
        self._formatted_by.write_text(version)
        return version

    def _write_state(self, pid: int, controller_port: int, pom: Path) -> BrokerState:
        state = BrokerState(
            pid=pid,
            port=self.config.port,
            controller_port=controller_port,
            data_dir=str(self.data_dir),
            log=str(self.log_path),
            properties=str(self.properties_path),
            kafka_version=dist.kafka_version(pom),
            started_at=time.time(),
            secure=self.config.secure,
            host=self.config.host,
        )
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(asdict(state), option=orjson.OPT_INDENT_2))
        tmp.replace(self.state_path)
        return state

    def _wait_ready(self, process: subprocess.Popen[bytes], timeout: float) -> None:
        files = self.config.secure_files
        config = files.client_config() if files else {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = process.poll()
            if code is not None:
                raise BrokerError(
                    f"broker exited during start (exit code {code}); last lines of "
                    f"{self.log_path}:\n{self.log_tail()}"
                )
            if admin_answers(f"{self.config.host}:{self.config.port}", config=config):
                return
            time.sleep(0.2)
        raise BrokerError(
            f"broker did not answer within {timeout:.0f}s; last lines of "
            f"{self.log_path}:\n{self.log_tail()}"
        )

    def _run_foreground(self, command: list[str], controller_port: int, pom: Path) -> BrokerState:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, cwd=self.data_dir)
        state = self._write_state(process.pid, controller_port, pom)
        try:
            process.wait()
        except KeyboardInterrupt:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
        finally:
            self.state_path.unlink(missing_ok=True)
        return state

    # -- stop ---------------------------------------------------------------------------
    def stop(self, *, timeout: float = 30.0) -> BrokerStatus:
        """Stop the broker (SIGTERM, then SIGKILL after ``timeout``) and remove its state."""
        current = self.status()
        if current.state is None:
            return current
        if current.running:
            terminate(current.state.pid, grace=timeout)
        self.state_path.unlink(missing_ok=True)
        return current

    def log_tail(self, lines: int = 15) -> str:
        """The last ``lines`` lines of the broker log (empty when there is none)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.rstrip().splitlines()[-lines:])


def min_heap(heap: str) -> str:
    """Initial heap: half of the maximum (at least 64m), so small machines are not reserved."""
    units = {"k": 1 / 1024, "m": 1, "g": 1024}
    number, unit = heap[:-1], heap[-1:].lower()
    if unit not in units or not number.isdigit():
        raise BrokerError(f"heap {heap!r} is not a size such as 512m or 1g")
    return f"{max(int(int(number) * units[unit]) // 2, 64)}m"


def admin_answers(
    bootstrap: str, timeout: float = 2.0, config: dict[str, Any] | None = None
) -> bool:
    """True when a broker at ``bootstrap`` answers a metadata request (a client with
    ``config``: the secured broker's credentials)."""
    host, _, port = bootstrap.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError:
        return False
    from confluent_kafka.admin import AdminClient  # noqa: PLC0415 - heavy, only when needed

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0, **(config or {})})
    try:
        metadata = admin.list_topics(timeout=timeout)
    except Exception:  # noqa: BLE001 - any client error means "not ready yet"
        return False
    return bool(metadata.brokers)
