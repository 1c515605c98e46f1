"""The broker a benchmark runs on: ``STREAMKIT_BOOTSTRAP_SERVERS``, else a local one of its
own (KRaft, from the Maven jars, on a free port, its data removed after)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from streamkit.ops.admin import admin_client, delete_topics
from streamkit.ops.local_broker import LocalBroker, LocalBrokerConfig, free_port
from streamkit.settings import Settings


@contextmanager
def bench_broker() -> Iterator[tuple[str, Any, list[str]]]:
    """``(bootstrap, admin client, topics made)``: append to the list every topic the run
    makes; on a shared broker they are deleted at the end (only then: a broker removes a
    deleted topic's files a minute later, which stalls whoever runs at that moment), a
    broker of our own goes with its data."""
    bootstrap = os.environ.get("STREAMKIT_BOOTSTRAP_SERVERS")
    broker, data_dir = None, None
    if not bootstrap:
        data_dir = Path(tempfile.mkdtemp(prefix="streamkit-bench-"))
        broker = LocalBroker(LocalBrokerConfig(data_dir=data_dir, cache_dir=Settings.from_env(
        ).cache_dir, port=free_port(), heap="1g"))  # fmt: skip
        bootstrap = broker.start().bootstrap_servers
    made: list[str] = []
    admin = admin_client({"bootstrap.servers": bootstrap})
    try:
        yield bootstrap, admin, made
    finally:
        if broker is None:
            delete_topics(admin, made)
        del admin  # before its broker stops: it would log the refused connections
        if broker is not None:
            broker.stop()
        if data_dir is not None:
            shutil.rmtree(data_dir, ignore_errors=True)
