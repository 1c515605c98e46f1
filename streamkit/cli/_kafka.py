"""What every command that talks to Kafka does first: read the settings once and check
that the cluster answers (one clear line and exit 2 when it does not)."""

from __future__ import annotations

from streamkit.ops.admin import ensure_reachable
from streamkit.settings import Settings

__all__ = ["kafka_settings"]


def kafka_settings() -> Settings:
    """The environment's settings, once Kafka at their bootstrap servers answers."""
    settings = Settings.from_env()
    ensure_reachable(settings)
    return settings
