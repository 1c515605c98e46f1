"""Nothing a test session starts outlives it: brokers, clusters, PostgreSQL, Connect and
workers die with the test process, also when it is killed or aborts.

:func:`watch` (called by the plugin's fixtures before they start anything) marks the
session's environment with ``STREAMKIT_TEST_SESSION=<id>``, which every process it starts
inherits, and starts this module as a small watchdog holding the read end of a pipe.
When the test process ends, however it ends, the pipe closes; the watchdog then stops
every process whose environment carries the mark (SIGTERM, SIGKILL two seconds later),
its own parent aside. Processes a test stopped itself are gone already.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

__all__ = ["MARK", "marked", "watch"]

MARK = "STREAMKIT_TEST_SESSION"
_watchdog: subprocess.Popen[bytes] | None = None


def watch() -> None:
    """Mark this process's environment and start the watchdog, once per process."""
    global _watchdog  # noqa: PLW0603 - one watchdog per test process
    if _watchdog is not None and _watchdog.poll() is None:
        return
    session = os.environ.setdefault(MARK, uuid.uuid4().hex)
    _watchdog = subprocess.Popen(
        [sys.executable, "-m", "streamkit.testing._reaper", session, str(os.getpid())],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
        env={k: v for k, v in os.environ.items() if k != MARK},
    )


def marked(session: str, spare: set[int]) -> list[int]:
    """The pids whose environment carries ``session``'s mark, but ``spare``."""
    needle = f"{MARK}={session}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in spare:
            continue
        with contextlib.suppress(OSError):
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
    return found


def _stop(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
        time.sleep(0.1)
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def main() -> None:
    """Wait for the test process to end (standard input closes), then stop what it
    started."""
    session, parent = sys.argv[1], int(sys.argv[2])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C of the session is not ours
    with contextlib.suppress(OSError):
        sys.stdin.buffer.read()
    _stop(marked(session, {os.getpid(), parent}))


if __name__ == "__main__":
    main()
