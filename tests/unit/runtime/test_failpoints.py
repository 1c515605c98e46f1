"""Failpoints: parsing, counting passes, SIGKILL when they fire, and fire-once markers."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from streamkit.runtime import failpoints

THREE_PASSES = (
    "from streamkit.runtime import failpoints\n"
    "for n in range(3):\n"
    "    failpoints.reached('produce')\n"
    "    print(n, flush=True)\n"
)


def _run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", THREE_PASSES],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_parse_reads_points_and_counts() -> None:
    assert failpoints.parse("") == {}
    assert failpoints.parse("process@3, commit@1") == {"process": 3, "commit": 1}


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("nowhere@1", "unknown failpoint 'nowhere'"),
        ("commit", "needs a count"),
        ("commit@0", "needs a count"),
        ("commit@x", "needs a count"),
    ],
)
def test_parse_rejects_malformed_specs(spec: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        failpoints.parse(spec)


def test_unarmed_points_do_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(failpoints, "ARMED", {})
    failpoints.reached("process")  # returns: the process is still here
    assert failpoints.ARMED == {}


def test_a_point_kills_the_process_on_its_nth_pass() -> None:
    done = _run({"STREAMKIT_FAILPOINTS": "produce@2"})
    assert done.returncode == -signal.SIGKILL
    assert done.stdout.split() == ["0"]


def test_a_once_marker_lets_a_restarted_process_pass(tmp_path: Path) -> None:
    marker = tmp_path / "fired"
    env = {"STREAMKIT_FAILPOINTS": "produce@1", "STREAMKIT_FAILPOINTS_ONCE": str(marker)}
    first = _run(env)
    assert first.returncode == -signal.SIGKILL
    assert marker.exists()
    second = _run(env)
    assert second.returncode == 0
    assert second.stdout.split() == ["0", "1", "2"]


def test_a_point_suppressed_by_its_marker_fires_once_the_marker_is_gone(tmp_path: Path) -> None:
    marker = tmp_path / "fired"
    marker.touch()
    code = (
        "import os\n"
        "from streamkit.runtime import failpoints\n"
        "for n in range(4):\n"
        "    failpoints.reached('commit')\n"
        "    print(n, flush=True)\n"
        "    if n == 1:\n"
        f"        os.remove({str(marker)!r})\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={
            **os.environ,
            "STREAMKIT_FAILPOINTS": "commit@2",
            "STREAMKIT_FAILPOINTS_ONCE": str(marker),
        },
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL
    assert done.stdout.split() == ["0", "1", "2"]


def test_a_point_with_sigstop_freezes_the_process_until_it_is_continued() -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", THREE_PASSES],
        stdout=subprocess.PIPE,
        text=True,
        env={
            **os.environ,
            "STREAMKIT_FAILPOINTS": "produce@2",
            "STREAMKIT_FAILPOINTS_SIGNAL": "SIGSTOP",
        },
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "0"
        _, status = os.waitpid(process.pid, os.WUNTRACED)  # returns once it has stopped
        assert os.WIFSTOPPED(status)
        assert os.WSTOPSIG(status) == signal.SIGSTOP
        os.kill(process.pid, signal.SIGCONT)
        assert process.stdout.read().split() == ["1", "2"]
    finally:
        process.kill()
        process.wait(timeout=30)


def test_an_unknown_signal_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMKIT_FAILPOINTS_SIGNAL", "STOP")
    with pytest.raises(ValueError, match="neither SIGKILL nor SIGSTOP"):
        failpoints.check()
