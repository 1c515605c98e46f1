"""What an app's workers may need to do on a cluster that enforces ACLs: exactly that,
nothing more. Derived from the topology (every name comes from
:class:`~streamkit.topology.Topology`):

- READ on every topic the workers consume (inputs, retry topics, repartition topics), on
  the tables' topics and on the changelogs (a store restores from its changelog);
- WRITE on every topic the workers produce to (outputs, projections, dead letters, parked,
  retry, repartition, late records and changelogs);
- READ on the consumer group (join, fetch and commit offsets), or on the share group of
  a queue app, with ALTER_CONFIGS there (a worker starts a new share group at the
  earliest offset);
- under ``exactly_once``, WRITE on the transactional ids: a prefix of the group's name.

READ and WRITE imply DESCRIBE (Kafka's rule), which covers the metadata the workers ask
for. Idempotent producing needs no cluster permission since Kafka 3.0 (WRITE on a topic
is enough). Creating topics is an operator's task (``streamkit topics create`` as an
admin), not the app's. ``streamkit acl plan`` turns these into ACLs for a principal; a
worker checks them at start-up (see :mod:`streamkit.engines.kafka.access`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from streamkit.topology import Role, Topology

if TYPE_CHECKING:
    from streamkit.app import App

__all__ = ["Permission", "permissions"]

_READ = (Role.INPUT, Role.RETRY, Role.REPARTITION, Role.CHANGELOG)
_WRITE = (
    Role.OUTPUT,
    Role.PROJECTION,
    Role.DEAD_LETTERS,
    Role.PARKED,
    Role.RETRY,
    Role.REPARTITION,
    Role.LATE,
    Role.CHANGELOG,
)


@dataclass(frozen=True)
class Permission:
    """``operation`` (READ, WRITE, ALTER_CONFIGS) on the ``resource`` (topic, group or
    transactional-id) named ``name`` (``prefixed``: every name starting with it), and why."""

    resource: str
    name: str
    operation: str
    reason: str
    prefixed: bool = False

    def __str__(self) -> str:
        pattern = "names starting with " if self.prefixed else ""
        return f"{self.operation} on {self.resource} {pattern}{self.name!r} ({self.reason})"


def permissions(app: App) -> list[Permission]:
    """Every permission ``app``'s workers need, sorted by resource, name and operation."""
    topology = Topology(app)
    found: dict[tuple[str, str, str], Permission] = {}

    def need(resource: str, name: str, operation: str, reason: str, prefixed: bool = False) -> None:
        key = (resource, name, operation)
        if key in found:
            reason = f"{found[key].reason}, {reason}"
        found[key] = Permission(resource, name, operation, reason, prefixed)

    for topic, roles in topology.roles().items():
        reads = [r.value for r in roles if r in _READ]
        writes = [r.value for r in roles if r in _WRITE]
        if reads:
            need("topic", topic, "READ", ", ".join(reads))
        if writes:
            need("topic", topic, "WRITE", ", ".join(writes))
    for table in app.tables:
        need("topic", table.topic, "READ", f"table {table.name}")
    if any(spec.queue for spec in app.processors):
        need("group", app.group_id, "READ", "the share group")
        need("group", app.group_id, "ALTER_CONFIGS", "share.auto.offset.reset=earliest")
    else:
        need("group", app.group_id, "READ", "the consumer group")
    if app.guarantee == "exactly_once":
        need("transactional-id", f"{app.group_id}-", "WRITE", "transactions", prefixed=True)
    return [found[key] for key in sorted(found)]
