"""The echo app fixture, shared with the runtime tests."""

from tests.integration.runtime.conftest import echo

__all__ = ["echo"]
