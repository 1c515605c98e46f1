"""The local broker's process: free ports, whether a pid runs (and is our broker), and a
graceful stop with a deadline."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import time
from pathlib import Path
from typing import Any

__all__ = [
    "free_port",
    "free_ports",
    "is_our_broker",
    "pid_alive",
    "port_in_use",
    "running_state",
    "terminate",
]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def free_ports(count: int, host: str = "127.0.0.1") -> int:
    """The first of ``count`` consecutive ports on ``host`` that are free now, below the
    kernel's ephemeral range (32768 up on Linux). A port from that range can be taken as
    the local port of some client's connection while its broker is down for a restart,
    and the broker then cannot bind it again."""
    rng = random.Random()  # noqa: S311 - spreads port choices; nothing secret
    for _ in range(500):
        base = rng.randrange(20000, 32000 - count)
        if not any(port_in_use(host, base + i) for i in range(count)):
            return base
    raise OSError(f"no {count} consecutive free ports on {host} between 20000 and 32000")


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) is not a running broker.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rpartition(")")[2].split()[0] == "Z":
            return False
    return True


def is_our_broker(pid: int, properties: Path) -> bool:
    """True when ``pid`` is a kafka.Kafka process started with our properties file."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return pid_alive(pid)  # no /proc: trust the pid
    return b"kafka.Kafka" in argv and str(properties).encode() in argv


def terminate(pid: int, grace: float) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.1)


def running_state(path: Path) -> dict[str, Any] | None:
    """The JSON state file of a local process (its ``pid`` and more), while that process
    runs (None: no file, or the process is gone)."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and pid_alive(int(doc.get("pid", 0))) else None
