"""What a test session starts dies with it, even when the test process aborts."""

import os
import subprocess
import sys
from pathlib import Path

from tests.integration.runtime.conftest import wait_for

# A test that starts a long-lived process in its own session (as brokers are started),
# then aborts the whole test process: no teardown runs.
ABORTING = """
import os, subprocess, sys
from pathlib import Path

from streamkit.testing._reaper import watch


def test_start_then_abort() -> None:
    watch()
    child = subprocess.Popen(["sleep", "600"], start_new_session=True)
    Path(os.environ["PID_FILE"]).write_text(str(child.pid))
    os.abort()
"""


def test_a_process_a_test_started_dies_when_the_test_process_aborts(tmp_path: Path) -> None:
    (tmp_path / "test_aborting.py").write_text(ABORTING)
    pid_file = tmp_path / "pid"
    env = {k: v for k, v in os.environ.items() if k not in {"CI", "STREAMKIT_TEST_SESSION"}}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env={**env, "PID_FILE": str(pid_file)},
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0  # it aborted
    pid = int(pid_file.read_text())

    def gone() -> bool:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return True
        return stat.rpartition(")")[2].split()[0] == "Z"

    wait_for(gone, 10, f"pid {pid} (sleep 600) to be stopped")
