"""Hosts on one machine: Linux network namespaces on a bridge this test creates.

Each "host" is a namespace with its own address on the bridge, reaching the brokers
(which listen on the bridge's own address) and nothing else. Needs root and iproute2;
everything made is removed on exit, also after a failure.
"""

import contextlib
import os
import random
import shutil
import signal
import subprocess
import uuid
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import pytest


@dataclass(frozen=True)
class Host:
    name: str  # the namespace
    veth: str  # its end on the bridge
    peer: str  # its end inside the namespace
    address: str


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def require_namespaces() -> None:
    """Skip (fail in CI) where namespaces cannot be made."""
    why = None
    if shutil.which("ip") is None:
        why = "iproute2 (ip) is not installed"
    elif os.geteuid() != 0:
        why = "network namespaces need root"
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{why} (CI runs the many-hosts test)")
        pytest.skip(why)


class Network:
    """A bridge with ``count`` namespaced hosts on it."""

    def __init__(self, count: int) -> None:
        tag = uuid.uuid4().hex[:5]
        prefix = f"10.{random.randrange(200, 250)}.{random.randrange(1, 250)}"
        self.bridge = f"skb{tag}"
        self.gateway = f"{prefix}.1"
        self.hosts = [
            Host(f"sk{tag}h{i}", f"sk{tag}v{i}", f"sk{tag}p{i}", f"{prefix}.{10 + i}")
            for i in range(count)
        ]

    def __enter__(self) -> Self:
        try:
            _ip("link", "add", "name", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for host in self.hosts:
                _ip("netns", "add", host.name)
                _ip("link", "add", host.veth, "type", "veth", "peer", "name", host.peer)
                _ip("link", "set", host.veth, "master", self.bridge)
                _ip("link", "set", host.veth, "up")
                _ip("link", "set", host.peer, "netns", host.name)
                _ip("-n", host.name, "addr", "add", f"{host.address}/24", "dev", host.peer)
                _ip("-n", host.name, "link", "set", host.peer, "up")
                _ip("-n", host.name, "link", "set", "lo", "up")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def run(self, host: Host, command: list[str], **kwargs: object) -> "subprocess.Popen[bytes]":
        """``command`` on ``host`` (its network only; the same files and users)."""
        return subprocess.Popen(["ip", "netns", "exec", host.name, *command], **kwargs)  # type: ignore[call-overload]

    def pids(self, host: Host) -> list[int]:
        done = subprocess.run(
            ["ip", "netns", "pids", host.name],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return [int(p) for p in done.stdout.split()]

    def kill_host(self, host: Host) -> list[int]:
        """SIGKILL every process on ``host``: the machine is gone."""
        pids = self.pids(host)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return pids

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        for host in self.hosts:
            self.kill_host(host)
            subprocess.run(["ip", "netns", "del", host.name], capture_output=True, check=False)
            subprocess.run(["ip", "link", "del", host.veth], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, check=False)
