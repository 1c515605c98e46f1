"""`topics list`, `describe` and `create` refuse a bad app in one line, before Kafka is
asked: a topic written but not declared, a contract that does not exist."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from streamkit.ops.local_broker import free_port

ROOT = Path(__file__).resolve().parents[3]

UNDECLARED = """
from streamkit import App

app = App("bad")
app.topic("in")


@app.processor(input="in", output="nowhere")
def relay(event: dict) -> dict:
    return event
"""

UNKNOWN_CONTRACT = """
from streamkit import App

app = App("bad")
app.topic("in", value="NoSuchContract")
app.topic("out")


@app.processor(input="in", output="out")
def relay(event: dict) -> dict:
    return event
"""


@pytest.mark.parametrize("command", ["list", "describe", "create"])
@pytest.mark.parametrize(
    ("source", "words"),
    [
        (UNDECLARED, "uses topic nowhere, which app bad does not declare"),
        (UNKNOWN_CONTRACT, "NoSuchContract"),
    ],
    ids=["undeclared-topic", "unknown-contract"],
)
def test_a_bad_app_is_one_clear_line(tmp_path: Path, command: str, source: str, words: str) -> None:
    (tmp_path / "badapp.py").write_text(source)
    (tmp_path / "schemas").mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "streamkit", "topics", command, "badapp"],
        env={
            **os.environ,
            "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}",
            "STREAMKIT_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert len(lines) == 1, done.stderr
    assert words in lines[0]
