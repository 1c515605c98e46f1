"""Instance ids: distinct for concurrent runs of one app on a host, stable across restarts."""

import socket
from pathlib import Path

import pytest

from streamkit.engines.kafka.transactions import transactional_id
from streamkit.runtime import instance


def test_concurrent_runs_claim_distinct_ids_and_a_restart_gets_its_id_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(instance.ENV, raising=False)
    host = socket.gethostname()
    first = instance.claim("orders", tmp_path)
    second = instance.claim("orders", tmp_path)
    other_app = instance.claim("billing", tmp_path)
    assert (first.id, second.id, other_app.id) == (host, f"{host}-2", host)
    first.release()
    again = instance.claim("orders", tmp_path)
    assert again.id == host
    for claimed in (second, other_app, again):
        claimed.release()


def test_an_explicit_instance_id_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(instance.ENV, "blue")
    assert instance.claim("orders", tmp_path).id == "blue"
    assert transactional_id("orders", "3") == "orders-blue-3"
