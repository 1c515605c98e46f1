"""Least-privilege ACLs for an app's principal: its :func:`~streamkit.permissions.permissions`
as ACL bindings, created and deleted through the admin API (``streamkit acl plan``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._acl import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
)
from confluent_kafka.admin._resource import ResourcePatternType, ResourceType
from confluent_kafka.admin._scram import (
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from streamkit.app import App
from streamkit.errors import ConfigError, KafkaOperationError
from streamkit.permissions import Permission, permissions

__all__ = ["Acl", "create_acls", "delete_acls", "plan", "set_scram_user"]

_RESOURCE = {
    "topic": ResourceType.TOPIC,
    "group": ResourceType.GROUP,
    "transactional-id": ResourceType.TRANSACTIONAL_ID,
}


@dataclass(frozen=True)
class Acl:
    """A permission allowed to ``principal`` from any host."""

    permission: Permission
    principal: str

    def __str__(self) -> str:
        return f"ALLOW {self.principal} {self.permission}"

    def binding(self) -> AclBinding:
        """The admin API's form of this ACL."""
        need = self.permission
        pattern = ResourcePatternType.PREFIXED if need.prefixed else ResourcePatternType.LITERAL
        return AclBinding(
            _RESOURCE[need.resource],
            need.name,
            pattern,
            self.principal,
            "*",
            AclOperation[need.operation],
            AclPermissionType.ALLOW,
        )

    def filter(self) -> AclBindingFilter:
        """A filter matching exactly this ACL (to delete it)."""
        b = self.binding()
        return AclBindingFilter(
            b.restype,
            b.name,
            b.resource_pattern_type,
            b.principal,
            b.host,
            b.operation,
            b.permission_type,
        )


def plan(app: App, principal: str) -> list[Acl]:
    """Every ACL ``app``'s workers need, run as ``principal`` (``User:<name>``)."""
    kind, _, name = principal.partition(":")
    if kind != "User" or not name:
        raise ConfigError(f"principal {principal!r}: expected User:<name>, such as User:orders")
    return [Acl(need, principal) for need in permissions(app)]


def create_acls(admin: AdminClient, acls: Iterable[Acl], timeout: float = 30.0) -> None:
    """Create ``acls`` (existing ones are left as they are)."""
    _wait(admin.create_acls([a.binding() for a in acls], request_timeout=timeout), timeout)


def delete_acls(admin: AdminClient, acls: Iterable[Acl], timeout: float = 30.0) -> None:
    """Delete ``acls``."""
    _wait(admin.delete_acls([a.filter() for a in acls], request_timeout=timeout), timeout)


def _wait(futures: Mapping[Any, Future[Any]], timeout: float) -> None:
    for future in futures.values():
        try:
            future.result(timeout=timeout)
        except KafkaException as exc:
            raise KafkaOperationError(f"ACLs refused: {exc.args[0].str()}") from None


def set_scram_user(admin: AdminClient, name: str, password: str, timeout: float = 30.0) -> None:
    """Create the SCRAM-SHA-512 user ``name`` (or change its password)."""
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192)
    upsert = UserScramCredentialUpsertion(name, info, password.encode())
    _wait(admin.alter_user_scram_credentials([upsert], request_timeout=timeout), timeout)
