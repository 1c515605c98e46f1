"""Failpoints: named places in the worker where a reliability test can kill it on purpose.

Off unless ``STREAMKIT_FAILPOINTS`` names some; then each check is one dict lookup. The
value is a comma-separated list of ``point@N``: the N-th time this process passes
``point`` it kills itself with SIGKILL (no cleanup, no flush, like ``kill -9``). With
``STREAMKIT_FAILPOINTS_ONCE=PATH`` a point fires only if PATH does not exist, and creates
it as it fires; while PATH exists the point keeps counting passes without firing, so a
worker restarted by the supervisor crashes again only after the test removes the file.
With ``STREAMKIT_FAILPOINTS_SIGNAL=SIGSTOP`` the process freezes there instead (a zombie:
the test resumes it with SIGCONT).

The points:

``process``
    a record has been processed; its output is about to be handed to the producer.
``produce``
    outputs were produced and acknowledged; their input offsets are about to be committed.
``commit``
    an offset commit was sent to the group coordinator and not yet confirmed.
``transaction``
    exactly once: the batch's records are in the open transaction; the offsets are not.
``txn-commit``
    exactly once: the offsets were added to the transaction; it is about to be committed.
"""

from __future__ import annotations

import os
import signal

POINTS = ("process", "produce", "commit", "transaction", "txn-commit")


def parse(spec: str) -> dict[str, int]:
    """``point@N,...`` as {point: N}; ValueError names what is wrong."""
    armed: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, count = item.partition("@")
        if name not in POINTS:
            raise ValueError(
                f"STREAMKIT_FAILPOINTS: unknown failpoint {name!r} (known: {', '.join(POINTS)})"
            )
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"STREAMKIT_FAILPOINTS: {item!r} needs a count, like {name}@100")
        armed[name] = int(count)
    return armed


def check() -> None:
    """Raise ValueError when ``STREAMKIT_FAILPOINTS`` is set but malformed."""
    parse(os.environ.get("STREAMKIT_FAILPOINTS", ""))
    name = _signal_name()
    if name not in ("", "SIGKILL", "SIGSTOP"):
        raise ValueError(f"STREAMKIT_FAILPOINTS_SIGNAL: {name!r} is neither SIGKILL nor SIGSTOP")


def _signal_name() -> str:
    return os.environ.get("STREAMKIT_FAILPOINTS_SIGNAL", "").strip().upper()


try:
    ARMED: dict[str, int] = parse(os.environ.get("STREAMKIT_FAILPOINTS", ""))
except ValueError:
    ARMED = {}  # check() reports it where the worker starts
"""Points still armed, with the number of passes left before they fire."""
_COUNTS = dict(ARMED)


def reached(point: str) -> None:
    """Pass ``point``: kill (or freeze) this process when it is armed and its count runs
    out."""
    left = ARMED.get(point)
    if left is None:
        return
    if left > 1:
        ARMED[point] = left - 1
        return
    marker = os.environ.get("STREAMKIT_FAILPOINTS_ONCE")
    if marker:
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except OSError:  # fired already (in an earlier life of this worker): count again
            ARMED[point] = _COUNTS[point]
            return
    del ARMED[point]
    os.kill(os.getpid(), signal.SIGSTOP if _signal_name() == "SIGSTOP" else signal.SIGKILL)
