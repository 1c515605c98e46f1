"""The supervisor: crash loops end with a clear message; a worker that cannot start fails."""

import os
import subprocess
import sys

from tests.integration.runtime.conftest import ROOT, EchoSetup


def test_poison_record_crash_loop_gives_up_and_commits_nothing_past_it(echo: EchoSetup) -> None:
    echo.produce(20)
    run = echo.start("--max-restarts", "3", "--restart-backoff", "0.2", ECHO_POISON_N="0")
    run.wait(timeout=120)
    err = echo.stderr(run)
    assert run.returncode == 1, err
    assert "crashed 3 times within" in err
    assert f"process failed for {echo.input}[" in err
    assert "in processor echo: ValueError: poison event 0" in err
    poisoned = next(o for o in echo.read(echo.input, 20) if o["n"] == 0)
    committed = echo.committed()[poisoned["_partition"]]
    assert committed <= poisoned["_offset"]  # never past the failed record


def test_missing_topics_stop_the_run_with_exit_code_2(echo: EchoSetup) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "streamkit", "run", "tests.integration.apps.echo"],
        env=echo.env(ECHO_INPUT="does-not-exist-x"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "topics of app" in done.stderr
    assert "does-not-exist-x" in done.stderr
    assert "streamkit topics create" in done.stderr


def test_unknown_module_fails_before_any_worker_starts() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "streamkit", "run", "no_such_app_module"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "STREAMKIT_BOOTSTRAP_SERVERS": "127.0.0.1:1"},
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "error: cannot import no_such_app_module: No module named 'no_such_app_module'"
    )


def test_autoscaling_with_missing_topics_stops_with_exit_code_2_even_at_zero_workers(
    echo: EchoSetup,
) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "streamkit",
            "run",
            "tests.integration.apps.echo",
            "--autoscale",
            "0..2",
        ],
        env=echo.env(ECHO_INPUT="does-not-exist-y"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "cannot autoscale: topics of group" in done.stderr
    assert "does-not-exist-y" in done.stderr
    assert "streamkit topics create" in done.stderr
