"""A local PostgreSQL for change data capture: Debian's server binaries, a data directory of
its own, ``wal_level=logical``, listening on 127.0.0.1 only (``streamkit postgres
start|stop|status``).

The server runs as the user who starts it; as root, as the ``postgres`` user of the
Debian package (PostgreSQL refuses to run as root), with its data under
``/var/tmp/streamkit-postgres/`` (a root home directory is closed to other users). Local
connections are trusted: it is a development database, reachable from this machine only.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from streamkit.errors import BrokerError
from streamkit.ops._local_process import pid_alive, running_state

__all__ = ["DEFAULT_PORT", "LocalPostgres", "PostgresInfo", "find_bin"]

DEFAULT_PORT = 5433
"""Beside a system PostgreSQL on 5432."""

# As root: a directory the postgres user can reach (root's home is closed to it); fixed,
# so that `status` and `stop` find the server again.
_ROOT_DATA = Path("/var/tmp/streamkit-postgres")  # noqa: S108


def find_bin(name: str) -> str:
    """A PostgreSQL server program (``initdb``, ``pg_ctl``, ``postgres``) of the newest
    version installed."""

    def version(path: str) -> int:
        part = Path(path).parts[4]
        return int(part) if part.isdigit() else 0

    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=version)
    if found:
        return found[-1]
    on_path = shutil.which(name)
    if on_path is None:
        raise BrokerError(
            f"PostgreSQL's {name} not found: install Debian's server (apt-get install postgresql)"
        )
    return on_path


@dataclass(frozen=True)
class PostgresInfo:
    """A running local PostgreSQL."""

    pid: int
    port: int
    data_dir: Path
    user: str = "postgres"
    database: str = "postgres"

    @property
    def dsn(self) -> str:
        """A libpq connection string to it."""
        return f"host=127.0.0.1 port={self.port} user={self.user} dbname={self.database}"


class LocalPostgres:
    """The local PostgreSQL whose state lives in ``state_dir``."""

    def __init__(self, state_dir: Path, port: int = DEFAULT_PORT) -> None:
        self.state_dir = state_dir
        self.port = port
        self.as_root = os.geteuid() == 0
        if self.as_root:
            digest = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:12]
            self.data_dir = _ROOT_DATA / digest
            self.log = _ROOT_DATA / f"{digest}.log"
        else:
            self.data_dir = state_dir / "data"
            self.log = state_dir / "postgres.log"
        self._state = state_dir / "postgres.json"

    def _run(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        command = ["runuser", "-u", "postgres", "--", *argv] if self.as_root else list(argv)
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)

    def info(self) -> PostgresInfo | None:
        """The running server this state directory started (None: none runs)."""
        doc = running_state(self._state)
        return (
            None
            if doc is None
            else PostgresInfo(int(doc["pid"]), int(doc["port"]), Path(doc["data_dir"]))
        )

    def start(self, timeout: float = 60) -> PostgresInfo:
        """Start it (initialised on first use); the running one if it already runs."""
        running = self.info()
        if running is not None:
            return running
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if not (self.data_dir / "PG_VERSION").is_file():
            self._init()
        if self.as_root:  # the log is written by the server's user
            self.log.touch()
            shutil.chown(self.log, "postgres")
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories= "
            "-c wal_level=logical -c max_replication_slots=10 -c max_wal_senders=10"
        )
        done = self._run(
            find_bin("pg_ctl"),
            "start",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log),
            "-w",
            "-t",
            str(int(timeout)),
            "-o",
            options,
            timeout=timeout + 10,
        )
        if done.returncode != 0:
            tail = " | ".join(self._log_tail(5))
            raise BrokerError(
                f"PostgreSQL did not start on 127.0.0.1:{self.port}: "
                f"{(done.stderr or done.stdout).strip()} {tail}".strip()
            )
        pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        self._state.write_text(
            json.dumps({"pid": pid, "port": self.port, "data_dir": str(self.data_dir)})
        )
        return PostgresInfo(pid, self.port, self.data_dir)

    def _init(self) -> None:
        if self.as_root:
            self.data_dir.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(self.data_dir.parent, 0o755)  # noqa: S103 - the postgres user enters it
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.as_root:
            shutil.chown(self.data_dir, "postgres", "postgres")
        done = self._run(
            find_bin("initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",
        )
        if done.returncode != 0:
            raise BrokerError(f"initdb failed in {self.data_dir}: {done.stderr.strip()[-400:]}")

    def stop(self, timeout: float = 60) -> bool:
        """Stop it (fast: open sessions are ended); whether one ran."""
        running = self.info()
        if running is None:
            return False
        self._run(
            find_bin("pg_ctl"),
            "stop",
            "-D",
            str(running.data_dir),
            "-m",
            "fast",
            "-w",
            "-t",
            str(int(timeout)),
            timeout=timeout + 10,
        )
        deadline = time.monotonic() + timeout
        while pid_alive(running.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        self._state.unlink(missing_ok=True)
        return True

    def destroy(self) -> None:
        """Stop it and remove its data (and, as root, its log beside it)."""
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        if self.as_root:
            self.log.unlink(missing_ok=True)

    def _log_tail(self, lines: int) -> list[str]:
        try:
            return self.log.read_text(errors="replace").strip().splitlines()[-lines:]
        except OSError:
            return []
