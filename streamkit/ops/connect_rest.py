"""A Kafka Connect cluster through its REST API: connector files registered, connector
and task states read and waited for (the local worker's, or any cluster's)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from streamkit.errors import BrokerError

__all__ = ["await_running", "connector_states", "read_connector", "register"]


def read_connector(path: Path, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """A connector's ``.properties`` file (``name=`` included), with ``overrides``."""
    config: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "!")):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise BrokerError(f"{path}: {line!r} is not key=value")
        config[key.strip()] = value.strip().replace("\\\\", "\\")
    config.update(overrides or {})
    if not config.get("name"):
        raise BrokerError(f"connector file {path} has no name=")
    return config


def register(url: str, path: Path, overrides: Mapping[str, str] | None = None) -> str:
    """Create or update the connector of ``path`` on the cluster at ``url``; its name."""
    config = read_connector(path, overrides)
    name = config["name"]
    request = urllib.request.Request(  # noqa: S310 - the cluster the operator named
        f"{url.rstrip('/')}/connectors/{name}/config",
        data=json.dumps(config).encode(),
        method="PUT",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30):  # noqa: S310
            return name
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:500]
        raise BrokerError(
            f"Kafka Connect at {url} refused connector {name}: HTTP {exc.code} {detail}"
        ) from None
    except OSError as exc:
        raise BrokerError(f"Kafka Connect at {url} does not answer: {exc}") from None


def connector_states(url: str, names: Sequence[str]) -> dict[str, str] | None:
    """Each connector's state, a task's when one is not running (None: no answer)."""
    found = {}
    for name in names:
        doc = _get(f"{url.rstrip('/')}/connectors/{name}/status")
        if doc is None:
            return None
        if "connector" not in doc:
            found[name] = "NOT FOUND"
            continue
        tasks = doc.get("tasks") or []
        state = doc["connector"]["state"]
        bad = [t for t in tasks if t.get("state") != "RUNNING"]
        if state == "RUNNING" and (not tasks or bad):
            state = bad[0]["state"] if bad else "STARTING"
            if state == "FAILED":
                trace = str(bad[0].get("trace", "")).strip().splitlines()
                state = f"FAILED ({trace[0][:300] if trace else 'no trace'})"
        found[name] = state
    return found


def await_running(
    url: str,
    names: Sequence[str],
    timeout: float,
    gone: Callable[[], str | None] = lambda: None,
) -> None:
    """Wait until every connector and task of ``names`` runs; a failed one, or ``gone()``
    saying why the worker is no more, is a :class:`BrokerError` at once."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        why = gone()
        if why is not None:
            raise BrokerError(why)
        states = connector_states(url, names)
        if states is not None:
            failed = [f"{n}: {s}" for n, s in states.items() if s.startswith("FAILED")]
            if failed:
                raise BrokerError(f"connector failed: {'; '.join(failed)}")
            if all(s == "RUNNING" for s in states.values()):
                return
            last = ", ".join(f"{n} {s}" for n, s in states.items())
        time.sleep(0.5)
    raise BrokerError(f"Kafka Connect's connectors are not running after {timeout:.0f}s ({last})")


def _get(url: str) -> Any:
    """A JSON answer of the REST API (None: no answer; 404: ``{}``)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 - its REST API
            return json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return {} if exc.code == 404 else None
    except (OSError, ValueError):
        return None
