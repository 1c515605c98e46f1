"""The pytest plugin works in a user's project: its markers are registered there."""

import os
import subprocess
import sys
from pathlib import Path


def test_the_plugin_registers_its_markers_for_any_project(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text(
        "import pytest\n\n\n@pytest.mark.kafka\ndef test_marked() -> None:\n    assert True\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "--strict-markers",
            "-p",
            "no:cacheprovider",
            "-W",
            "error::pytest.PytestUnknownMarkWarning",
            str(tmp_path),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
    listed = subprocess.run(
        [sys.executable, "-m", "pytest", "--markers", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "@pytest.mark.kafka:" in listed.stdout
    assert "@pytest.mark.docker:" in listed.stdout
