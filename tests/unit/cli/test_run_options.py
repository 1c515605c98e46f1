"""`streamkit run` refuses contradictory or malformed scaling options before it loads
anything."""

import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from streamkit.cli import cli


def test_workers_and_autoscale_together_are_refused() -> None:
    result = CliRunner().invoke(cli, ["run", "x", "--workers", "2", "--autoscale", "1..3"])
    assert result.exit_code == 2
    assert "give --workers N or --autoscale MIN..MAX, not both" in result.output


def test_a_malformed_autoscale_range_names_the_expected_form() -> None:
    result = CliRunner().invoke(cli, ["run", "x", "--autoscale", "5..2"])
    assert result.exit_code == 2
    assert "autoscale bounds 5..2 are not MIN..MAX" in result.output


def test_a_malformed_cooldown_is_refused() -> None:
    result = CliRunner().invoke(cli, ["run", "x", "--autoscale", "0..2", "--cooldown", "soon"])
    assert result.exit_code == 2
    assert "'soon' is not a duration" in result.output


def test_autoscaling_a_queue_app_is_refused_with_what_to_do_instead() -> None:
    result = CliRunner().invoke(cli, ["run", "tests.integration.apps.queue", "--autoscale", "0..3"])
    assert result.exit_code == 2
    assert "consumes through a share group" in result.output
    assert "run it with --workers N" in result.output


def test_a_bad_workflow_is_refused_before_kafka_is_asked(tmp_path: Path) -> None:
    (tmp_path / "badflow.py").write_text(
        "from streamkit import App\n"
        "app = App('bad')\n"
        "app.topic('in')\n"
        "flow = app.workflow('loop', start='in', id='id')\n"
        "flow.step(name='a', next='b')(lambda d: d)\n"
        "flow.step(name='b', next='a')(lambda d: d)\n"
    )
    env = {**os.environ, "STREAMKIT_BOOTSTRAP_SERVERS": "127.0.0.1:1"}  # nothing listens
    done = subprocess.run(
        [sys.executable, "-m", "streamkit", "run", "badflow"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "error: workflow loop: step(s) a, b are in a cycle without an exit (no path from them "
        "reaches END or a timeout's compensate or fail)"
    )
