"""The permissions an app needs, derived from its topology: a queue app's share group."""

from processors import orders, thumbnails
from streamkit.permissions import Permission, permissions


def _on_group(app_permissions: list[Permission]) -> dict[str, str]:
    return {p.operation: p.reason for p in app_permissions if p.resource == "group"}


def test_a_consumer_group_app_reads_its_group_and_nothing_more() -> None:
    assert _on_group(permissions(orders.app)) == {"READ": "the consumer group"}


def test_a_queue_app_reads_its_share_group_and_sets_where_a_new_one_starts() -> None:
    needed = permissions(thumbnails.app)
    assert _on_group(needed) == {
        "READ": "the share group",
        "ALTER_CONFIGS": "share.auto.offset.reset=earliest",
    }
    topics = {(p.name, p.operation) for p in needed if p.resource == "topic"}
    assert ("thumbnails.requested", "READ") in topics
    assert ("thumbnails.rendered", "WRITE") in topics
    assert ("thumbnails-thumbnails.requested-dlq", "WRITE") in topics
