"""Tables: a compacted topic materialised per worker, looked up by processors.

``app.table("customers", topic=CUSTOMERS)`` declares a table; a processor that declares
``tables=[...]`` gets it as extra arguments after the event (stream-table join): the
table itself (``get`` any key: the left form by hand), ``table.left(on=field)`` (the row
of the event's ``field``, or None) or ``table.inner(on=field)`` (the row; events without
one are not passed to the function, and are counted as filtered). Table updates never
trigger a processor.

A **partitioned** table (the default) must be co-partitioned with every stream that
reads it (same partition count, records keyed by the lookup key): a worker holds only the
table partitions matching its assigned input partitions, restored to their end before
the first record of that partition is processed, then followed as the worker polls. A
**global** table (``global_=True``) is read whole by every worker before it processes
anything, and looked up by any key. Either way lookups see the table as of processing
time (the latest update read), not as of the event's time.

What a record does is what compaction keeps: the table holds, of each record key, its
latest record. A tombstone removes its record key's row; a row whose table key (``key=``,
a row field) differs from its record key's previous row moves that row; two record keys
whose rows name one table key give the later record's row, and when that one goes the
other's comes back. So a live worker sees what a worker restarted on the compacted topic
sees, whatever the table's form.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from streamkit.errors import ConfigError
from streamkit.state.stores import state_key

__all__ = ["MISSING", "TableData", "TableLookup", "TableSpec"]

MISSING: Any = object()
"""What an ``inner`` lookup finds when the event has no row: the event is not processed."""


@dataclass(frozen=True)
class TableSpec:
    """A declared table.

    Attributes:
        name: the table's name (unique in the app).
        topic: the compacted topic it materialises.
        key: the row field holding the table key, a function of the row, or None for the
            record key.
        global_: every worker holds every partition (else only its inputs' partitions).
    """

    name: str
    topic: str
    key: str | Callable[[Any], Any] | None = None
    global_: bool = False

    def row_key(self, row: Any, record_key: Any) -> str | None:
        """The table key of a row (None: it has none, and is not kept)."""
        return state_key(self.key, row, record_key)

    def left(self, on: str | Callable[[Any], Any]) -> TableLookup:
        """The row of the event's ``on`` (a field or a function of the event), or None."""
        return TableLookup(self, "left", on)

    def inner(self, on: str | Callable[[Any], Any]) -> TableLookup:
        """The row of the event's ``on``; an event without one is not processed."""
        return TableLookup(self, "inner", on)


@dataclass(frozen=True)
class TableLookup:
    """What a processor gets of a table: the whole table (``how="table"``), or the row of
    the event's ``on`` (``"left"``: None when missing; ``"inner"``: skip the event)."""

    table: TableSpec
    how: Literal["table", "left", "inner"] = "table"
    on: str | Callable[[Any], Any] | None = None

    def __post_init__(self) -> None:
        if self.how != "table" and self.on is None:
            raise ConfigError(f"table {self.table.name}: a lookup of the {self.how} form needs on=")

    def resolve(self, data: TableData, event: Any) -> Any:
        """The argument for ``event``: the table, its row, None or :data:`MISSING`."""
        if self.how == "table":
            return data
        key = state_key(self.on, event, None)
        row = None if key is None else data.get(key)
        if row is None and self.how == "inner":
            return MISSING
        return row


class TableData:
    """The rows a worker holds of one table, per partition (what a processor looks up).

    ``get(key)`` finds a key in any held partition: a partitioned table holds only the
    partitions of the worker's inputs, where the keys of their events live.
    """

    def __init__(self, spec: TableSpec) -> None:
        self.spec = spec
        self._partitions: dict[int, dict[str, Any]] = {}
        self._records: dict[int, _Records] = {}
        """Of a table keyed by a row field: what each record key holds, per partition."""

    def get(self, key: Any, default: Any = None) -> Any:
        """The row of ``key`` (``default`` when there is none)."""
        text = str(key)
        for rows in self._partitions.values():
            row = rows.get(text)
            if row is not None:
                return row
        return default

    def __getitem__(self, key: Any) -> Any:
        row = self.get(key)
        if row is None:
            raise KeyError(key)
        return row

    def __contains__(self, key: object) -> bool:
        return self.get(key) is not None

    def __len__(self) -> int:
        return sum(len(rows) for rows in self._partitions.values())

    def items(self) -> Iterator[tuple[str, Any]]:
        """Every key held, with its row."""
        for rows in self._partitions.values():
            yield from rows.items()

    # -- what the engine does -------------------------------------------------------------
    def hold(self, partition: int) -> None:
        """Start holding ``partition`` (empty until its records are applied)."""
        rows = self._partitions.setdefault(partition, {})
        if self.spec.key is not None and partition not in self._records:
            self._records[partition] = _Records(rows)

    def drop(self, partition: int) -> None:
        """Stop holding ``partition`` (revoked)."""
        self._partitions.pop(partition, None)
        self._records.pop(partition, None)

    def held(self) -> list[int]:
        """The partitions held."""
        return sorted(self._partitions)

    def apply(self, partition: int, record_key: Any, row: Any) -> None:
        """A record of the table topic, in offset order: ``row`` for its record key (None:
        a tombstone removes what the record key held; see the module docstring)."""
        rows = self._partitions.get(partition)
        if rows is None:
            return
        key = None if row is None else self.spec.row_key(row, record_key)
        records = self._records.get(partition)
        if records is not None and record_key is not None:
            records.apply(str(record_key), key, row)
        elif key is not None:
            rows[key] = row
        elif record_key is not None:  # a tombstone, or a row without a key: nothing kept
            rows.pop(str(record_key), None)


class _Records:
    """A partition of a table keyed by a row field: the latest row of each record key,
    and which record keys name each table key, so that ``rows`` is always what a
    compacted topic read from its start would give."""

    def __init__(self, rows: dict[str, Any]) -> None:
        self.rows = rows
        self.latest: dict[str, tuple[int, str, Any]] = {}
        """record key -> (sequence, table key, row) of its latest record with a table key."""
        self.claims: dict[str, dict[str, int]] = {}
        """table key -> {record key: sequence} of the record keys whose row names it."""
        self.sequence = 0

    def apply(self, record_key: str, key: str | None, row: Any) -> None:
        previous = self.latest.pop(record_key, None)
        if previous is not None:
            _, old_key, _ = previous
            claims = self.claims[old_key]
            del claims[record_key]
            if not claims:
                del self.claims[old_key]
                del self.rows[old_key]
            else:  # another record key's row of that table key comes back
                winner = max(claims, key=claims.__getitem__)
                self.rows[old_key] = self.latest[winner][2]
        if key is None:
            return
        self.sequence += 1
        self.latest[record_key] = (self.sequence, key, row)
        self.claims.setdefault(key, {})[record_key] = self.sequence
        self.rows[key] = row
