"""A worker's start-up check of its permissions, on a cluster that enforces ACLs.

Without it a missing ACL shows up late and vaguely: a topic the principal may not
describe looks absent, a refused read is retried by the client forever, a refused write
surfaces when the first record fails. So before it joins the group, the worker asks the
cluster which operations its principal may do on each of its topics and its group (the
``include_authorized_operations`` of the admin API, answered by the broker's authorizer)
and compares them with :func:`~streamkit.permissions.permissions`. Everything missing is
named in one line, with the command that grants it. A cluster without an authorizer
answers nothing to compare, and the check passes.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient

from streamkit.app import App
from streamkit.errors import KafkaOperationError
from streamkit.permissions import Permission, permissions
from streamkit.settings import Settings

__all__ = ["check_access", "denied", "is_denied"]

_DENIED = frozenset(
    {
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    }
)


def is_denied(error: KafkaError) -> bool:
    """True for the errors that mean "an ACL is missing"."""
    return error.code() in _DENIED


def check_access(app: App, settings: Settings, timeout: float = 15.0) -> None:
    """Raise :class:`KafkaOperationError` naming every permission the principal lacks."""
    needs = [n for n in permissions(app) if n.resource in {"topic", "group"}]
    admin = AdminClient(settings.client_config(for_client="admin"))
    names = sorted({n.name for n in needs if n.resource == "topic"})
    allowed: dict[tuple[str, str], set[str] | None] = {}
    futures = admin.describe_topics(
        TopicCollection(names), request_timeout=timeout, include_authorized_operations=True
    )
    for name, future in futures.items():
        allowed[("topic", name)] = _operations(future, timeout)
    (group,) = admin.describe_consumer_groups(
        [app.group_id], request_timeout=timeout, include_authorized_operations=True
    ).values()
    allowed[("group", app.group_id)] = _operations(group, timeout)
    missing = [n for n in needs if not _granted(n, allowed.get((n.resource, n.name)))]
    if missing:
        raise KafkaOperationError(denied(settings, missing))


def denied(settings: Settings, missing: list[Permission]) -> str:
    """The line that names what the principal may not do, and how to grant it."""
    user = settings.kafka.get("sasl.username")
    who = f"User:{user}" if user else "this client"
    return (
        f"not authorized: {who} may not {'; '.join(map(str, missing))}. Grant them with "
        f"`streamkit acl plan --app MODULE --principal {who if user else 'User:NAME'} "
        "--execute` (as an admin)"
    )


def _operations(future: Future[Any], timeout: float) -> set[str] | None:
    """The operations allowed on a resource; None when the cluster does not say (no
    authorizer, or the resource does not exist: reported elsewhere); an empty set when
    even describing it is denied."""
    try:
        description = future.result(timeout=timeout)
    except KafkaException as exc:
        if is_denied(exc.args[0]):
            return set()
        return None
    operations = description.authorized_operations
    if operations is None:
        return None
    return {op.name for op in operations}


def _granted(need: Permission, allowed: set[str] | None) -> bool:
    return allowed is None or need.operation in allowed or "ALL" in allowed
