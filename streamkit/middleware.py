"""Middleware: typed hooks around every record of an app (``App(middleware=[...])``)."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Literal

from streamkit.failures.failure import Decision, Failure
from streamkit.records import Headers

__all__ = ["Middleware", "RecordInfo"]


@dataclass(frozen=True, slots=True)
class RecordInfo:
    """The record a middleware hook is about."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    headers: Headers
    group: str


class Middleware:
    """Base class of middleware: every hook does nothing until overridden.

    Only the hooks a subclass overrides are called (the others cost nothing). Hooks are
    typed and named for what they observe; an exception raised by a hook is not swallowed.

    =====================  ==========================================================
    ``on_consumed``        records taken from a topic in one batch
    ``on_record``          around one record: enter before its processors run, exit after;
                           the headers it yields are added to every output and dead letter
    ``on_processed``       one processor call: duration and how it ended
    ``on_failure``         a failure and the decision taken
    ``on_produced``        acknowledged records per topic (once per loop iteration)
    ``on_rebalance``       partitions assigned, revoked or lost
    ``on_late``            records too late for a window store (sent to its late topic)
    ``on_step``            one call of a workflow step (or compensation) and how it ended
    =====================  ==========================================================
    """

    def on_consumed(self, topic: str, count: int) -> None:
        """``count`` records of ``topic`` were taken in one batch."""

    def on_record(
        self, record: RecordInfo
    ) -> AbstractContextManager[list[tuple[str, bytes]]] | None:
        """A context entered around the record's processing (None: nothing to do).

        The value it yields is a list of headers added to the record's outputs and dead
        letters (a trace context, for example).
        """
        return None

    def on_processed(self, processor: str, seconds: float, outcome: str) -> None:
        """A processor call ended: ``outcome`` is emitted, filtered or failed."""

    def on_failure(self, failure: Failure, decision: Decision) -> None:
        """A record failed; ``decision`` is what happens to it."""

    def on_produced(self, counts: Mapping[str, int]) -> None:
        """Records acknowledged by the broker since the last call, per topic."""

    def on_rebalance(self, kind: Literal["assigned", "revoked", "lost"], count: int) -> None:
        """Partitions changed hands."""

    def on_late(self, store: str, count: int) -> None:
        """``count`` records came too late for the windows of ``store`` (to its late topic)."""

    def on_step(self, workflow: str, step: str, outcome: str, seconds: float) -> None:
        """A workflow step ran: ``outcome`` is completed, retried, failed, skipped,
        timed_out or compensated (``step`` is ``<step>.compensation`` for a compensation;
        ``start`` with started or duplicate, and ``end`` with the terminal status, mark an
        instance's life)."""
