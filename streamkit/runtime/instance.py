"""Which ``streamkit run`` of an app this is on its host: part of its transactional ids.

Exactly-once workers need transactional ids that are stable across restarts (so that a
restarted worker fences its predecessor and aborts what it left open) and unique among
running workers (or two live workers fence each other in turn). The instance id gives
both: ``STREAMKIT_INSTANCE_ID`` when set; otherwise the host name for the first run of
the app's group on this host, and ``host-2``, ``host-3``… for further concurrent runs,
claimed with a lock file that the supervisor holds while it lives.
"""

from __future__ import annotations

import fcntl
import os
import socket
from dataclasses import dataclass
from pathlib import Path

ENV = "STREAMKIT_INSTANCE_ID"
_MAX_INSTANCES = 1000


@dataclass
class Instance:
    """A claimed instance id; the lock (when there is one) is held until :meth:`release`."""

    id: str
    lock_fd: int | None = None

    def release(self) -> None:
        """Let another run on this host claim the id."""
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None


def current() -> str:
    """This process's instance id: ``STREAMKIT_INSTANCE_ID``, else the host name."""
    return os.environ.get(ENV, "").strip() or socket.gethostname()


def claim(group: str, lock_dir: Path) -> Instance:
    """The first instance id of ``group`` free on this host (see the module docstring)."""
    explicit = os.environ.get(ENV, "").strip()
    if explicit:
        return Instance(explicit)
    host = socket.gethostname()
    lock_dir.mkdir(parents=True, exist_ok=True)
    for n in range(1, _MAX_INSTANCES + 1):
        name = host if n == 1 else f"{host}-{n}"
        fd = os.open(lock_dir / f"{group}.{name}.lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return Instance(name, fd)
    raise RuntimeError(f"{_MAX_INSTANCES} runs of group {group} on this host hold instance ids")
