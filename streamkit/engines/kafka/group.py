"""Commits and rebalances: a worker as a member of its app's consumer group.

At least once: an input offset is committed only after every record derived from it
(outputs, dead letters, retry records, changelog writes), and everything before it in its
partition, is acknowledged by the broker. A partition assigned gets a task, its stores
restored before its first record; a partition revoked is flushed and committed up to what
was acknowledged, then its task is closed; a lost one is closed without a commit.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from streamkit.engines.kafka.clients import ChangelogReader, open_transaction_wait
from streamkit.engines.kafka.engine import KafkaEngine
from streamkit.engines.kafka.tables import TableFeed
from streamkit.errors import KafkaOperationError
from streamkit.records import TP
from streamkit.runtime import failpoints

__all__ = ["GroupMember", "describe"]


class GroupMember(KafkaEngine):
    """The group side of a worker: assignment callbacks, offset commits, lag."""

    restore: ChangelogReader
    exactly_once: bool
    shutdown_timeout: float
    table_feed: TableFeed | None = None

    def init_group(self) -> None:
        """Fields of the group side (called by the worker's constructor)."""
        self.ever_assigned = False
        self.lag: dict[TP, int] = {}
        self.failed = False
        self._callback_error: BaseException | None = None

    @property
    def assigned(self) -> set[TP]:
        """The partitions this member holds."""
        return set(self.tasks)

    def subscribe(self) -> None:
        """Join the group on the app's input and retry topics."""
        self.consumer.subscribe(
            self.topology.consumed(),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )

    def raise_callback_error(self) -> None:
        """Re-raise, in the loop, what a rebalance callback could not raise itself."""
        if self._callback_error is not None:
            error, self._callback_error = self._callback_error, None
            raise error

    # -- rebalances -----------------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        keys = [(p.topic, p.partition) for p in partitions]
        tasks = [self.open_task(tp) for tp in keys]
        stable = True
        if self.exactly_once:
            try:
                self._await_stable(partitions, describe(keys))
            except BaseException as exc:  # noqa: BLE001 - re-raised by the loop
                self._callback_error, stable = exc, False
        elif self.timed:  # where each partition stands: idle windows close once caught up
            self._learn_committed(partitions)
        for task in tasks:
            if task.state is not None and stable:  # else nothing is processed: the loop raises
                self.restoring += 1
                before = task.state.restored_records
                try:
                    task.state.restore(self.restore)
                except BaseException as exc:  # noqa: BLE001 - re-raised by the loop
                    self._callback_error = exc
                finally:
                    self.restoring -= 1
                    self.restored_records += task.state.restored_records - before
        if self.table_feed is not None:
            try:
                self.table_feed.assigned(keys)
            except BaseException as exc:  # noqa: BLE001 - re-raised by the loop
                self._callback_error = exc
        self.ever_assigned = True
        self.chain.rebalance("assigned", len(keys))
        self.log.info("assigned %s", describe(keys))

    def _await_stable(self, partitions: list[TopicPartition], where: str) -> None:
        """Exactly once: wait until no open transaction holds offsets of ``partitions``,
        before their stores are restored.

        A previous owner frozen past its session (a zombie) may have sent its batch's
        offsets to its transaction before it froze; it can still commit that transaction
        once it resumes, and this member would then process from after the batch. The
        batch's state changes must therefore be in the restore: a ``read_committed``
        consumer is told the committed offsets only once they are stable (KIP-447), and
        the restore then reads the changelog to its high watermark (past every
        transaction open now, committed or aborted).
        """
        give_up = time.monotonic() + open_transaction_wait(self.restore.transaction_timeout_ms)
        told = False
        while True:
            try:
                found = self.consumer.committed(partitions, timeout=5)
                break
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError._TIMED_OUT or time.monotonic() > give_up:
                    raise KafkaOperationError(
                        f"the committed offsets of {where} are unknown: {exc.args[0].str()}"
                    ) from exc
            if not told:
                told = True
                self.log.info(
                    "waiting for a transaction holding offsets of %s to end (at the latest "
                    "when its producer's transaction timeout aborts it)",
                    where,
                )
        self._note_committed(found)

    def _learn_committed(self, partitions: list[TopicPartition]) -> None:
        try:
            found = self.consumer.committed(partitions, timeout=10)
        except KafkaException as exc:
            self.log.info("committed offsets unknown at assignment: %s", exc.args[0].str())
            return
        self._note_committed(found)

    def _note_committed(self, found: list[TopicPartition]) -> None:
        for tp in found:
            task = self.tasks.get((tp.topic, tp.partition))
            if task is not None and tp.offset >= 0:
                task.committed = tp.offset

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        keys = [(p.topic, p.partition) for p in partitions]
        try:
            if not self.failed and not self.exactly_once:
                if self.concurrent is not None:  # the calls running for them end first
                    until = time.monotonic() + self.shutdown_timeout / 2
                    tasks = [self.tasks[tp] for tp in keys if tp in self.tasks]
                    self.concurrent.drain(tasks, lambda: time.monotonic() > until)
                remaining = self.producer.flush(self.shutdown_timeout)
                if remaining:
                    self.log.warning("%d records unacknowledged at revoke", remaining)
                self.advance()
                if self.tick():  # changelog writes that waited for time's outputs
                    self.producer.flush(self.shutdown_timeout)
                    self.advance()
                self.commit(asynchronous=False, only=keys)
        except BaseException as exc:  # noqa: BLE001 - re-raised by the loop after consume()
            self.failed = True
            self._callback_error = exc
        finally:
            self.close_tasks(keys)
            self._drop_tables(keys)
            self.chain.rebalance("revoked", len(keys))
            self.log.info("revoked %s", describe(keys))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        keys = [(p.topic, p.partition) for p in partitions]
        self.close_tasks(keys)
        self._drop_tables(keys)
        self.chain.rebalance("lost", len(keys))
        self.log.warning("lost %s (not committed; the new owner reprocesses)", describe(keys))

    def _drop_tables(self, keys: list[TP]) -> None:
        if self.table_feed is not None:
            try:
                self.table_feed.revoked(keys, self.tasks)
            except KafkaException as exc:  # the next assignment reads them again anyway
                self.log.warning("dropping table partitions failed: %s", exc.args[0].str())

    # -- commits --------------------------------------------------------------------------
    def commit(self, *, asynchronous: bool, only: Iterable[TP] | None = None) -> bool:
        """Commit what is ready; False when the commit was refused (it is sent again)."""
        if self.exactly_once:
            return True  # offsets are committed inside each batch's transaction
        chosen = (
            self.tasks if only is None else {tp: self.tasks[tp] for tp in only if tp in self.tasks}
        )
        changed = [
            TopicPartition(t, p, task.offsets.ready)
            for (t, p), task in chosen.items()
            if task.offsets.ready is not None and task.offsets.ready != task.committed
        ]
        if not changed:
            return True
        if failpoints.ARMED:
            failpoints.reached("produce")
        try:
            if asynchronous:
                self.consumer.commit(offsets=changed, asynchronous=True)
            else:
                self.consumer.commit(offsets=changed, asynchronous=False)
        except KafkaException as exc:
            self.log.warning("offset commit failed (will retry): %s", exc.args[0].str())
            return False
        if failpoints.ARMED:
            failpoints.reached("commit")
        self.mark_committed({(tp.topic, tp.partition): tp.offset for tp in changed})
        return True

    def mark_committed(self, offsets: Mapping[TP, int]) -> None:
        """Offsets that were committed: remembered by their tasks, whose next
        infrastructure wait starts small again (at least once and exactly once alike)."""
        for tp, offset in offsets.items():
            task = self.tasks.get(tp)
            if task is not None:
                task.committed_at(offset)

    def on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """The result of a commit: what did not land is forgotten, so it is sent again.

        An asynchronous commit can fail after the loop moved on (a rebalance in progress,
        a coordinator change); without this the worker would believe those offsets were
        committed and never send them again.
        """
        if error is not None and error.code() == KafkaError._NO_OFFSET:
            return  # there was nothing to commit
        failed = [tp for tp in partitions if error is not None or tp.error is not None]
        for tp in failed:
            task = self.tasks.get((tp.topic, tp.partition))
            if task is not None and task.committed == tp.offset:
                task.committed = None
        if failed:
            first = error or failed[0].error
            where = describe([(tp.topic, tp.partition) for tp in failed])
            reason = first.str() if first is not None else "unknown error"
            self.log.info("offset commit of %s failed (sent again): %s", where, reason)

    def refresh_lag(self) -> None:
        """Lag per assigned partition from cached watermarks (no broker round trip)."""
        lag: dict[TP, int] = {}
        for (t, p), task in list(self.tasks.items()):
            try:
                _, high = self.consumer.get_watermark_offsets(TopicPartition(t, p), cached=True)
            except KafkaException:
                continue
            done = task.committed
            if done is None:
                (position,) = self.consumer.position([TopicPartition(t, p)])
                done = position.offset if position.offset >= 0 else high
            if high >= 0:
                lag[(t, p)] = max(0, high - done)
        self.lag = lag


def describe(keys: Iterable[TP]) -> str:
    """``topic[p], ...`` for a log line."""
    found = sorted(keys)
    if not found:
        return "nothing"
    return ", ".join(f"{t}[{p}]" for t, p in found)
