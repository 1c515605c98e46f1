"""The suite's own session: whatever it starts (brokers, clusters, workers, PostgreSQL,
Connect) dies with the test process, also when it is killed or aborts."""

import pytest

from streamkit.testing._reaper import watch


def pytest_configure(config: pytest.Config) -> None:
    """Start the watchdog before any test starts a process."""
    watch()
