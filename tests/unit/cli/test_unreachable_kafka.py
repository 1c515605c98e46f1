"""With no Kafka at the configured address, every command says so in one line naming the
address, within seconds, with exit code 2: no librdkafka log flood, no traceback."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streamkit.ops.local_broker import free_port

ROOT = Path(__file__).resolve().parents[3]
ECHO = "tests.integration.apps.echo"
COMMANDS = [
    ["produce", "some-topic"],
    ["consume", "some-topic", "--max", "1"],
    ["dlq", "list", "--app", ECHO],
    ["dlq", "show", "--app", ECHO],
    ["dlq", "redrive", "--app", ECHO],
    ["state", "get", "--app", "tests.integration.apps.totals", "totals", "c-1"],
    ["topics", "create", ECHO],
    ["topics", "list", ECHO],
    ["topics", "describe", ECHO],
    ["status", "--app", ECHO, "--once"],
    ["replay", "reset", "--app", ECHO, "--to-earliest"],
    ["replay", "shadow", "--app", ECHO, "--from", "0", "--discard"],
    ["run", ECHO],
]


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c[:2]) for c in COMMANDS])
def test_an_unreachable_broker_is_one_clear_line_and_exit_2(command: list[str]) -> None:
    address = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "streamkit", *command],
        env={**os.environ, "STREAMKIT_BOOTSTRAP_SERVERS": address, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        input="",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    took = time.monotonic() - started
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: cannot reach Kafka at ")
    assert address in lines[0]
    assert "Traceback" not in done.stderr
    assert took < 15, f"{took:.1f}s to say it"
