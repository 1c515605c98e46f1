"""`streamkit run --autoscale`: a burst scales the workers up and back down to zero, new
records wake them again, and nothing is lost on the way."""

import re
import urllib.request
from collections import Counter

from streamkit.ops._local_process import free_ports
from tests.integration.runtime.conftest import EchoSetup, wait_for
from tests.observability_files import AUTOSCALER, exposed, metrics_used


def scrape(port: int, name: str) -> float | None:
    """A gauge of the supervisor's /metrics, None while it does not answer yet."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as reply:
            text = reply.read().decode()
    except OSError:
        return None
    found = re.search(rf"^{name}{{[^}}]*}} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


def test_a_burst_scales_up_then_down_to_zero_and_new_records_wake_a_worker(
    echo: EchoSetup,
) -> None:
    port = free_ports(4)  # the first of 4 ports: the supervisor, then a worker each
    run = echo.start(
        "--autoscale",
        "0..3",
        "--lag-per-worker",
        "200",
        "--cooldown",
        "4s",
        "--commit-interval",
        "0.2",
        "--http-port",
        str(port),
        ECHO_DELAY_MS="4",
    )
    wait_for(lambda: scrape(port, "streamkit_autoscale_lag") == 0, 60, "a first measurement")
    assert scrape(port, "streamkit_autoscale_workers") == 0  # nothing to do: no worker
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        served = exposed(reply.read().decode())
    # What the dashboard and the alert rules read of the supervisor, it serves.
    assert metrics_used() & AUTOSCALER == AUTOSCALER
    assert served >= AUTOSCALER, AUTOSCALER - served

    echo.produce(3000)
    most = 0.0

    def drained() -> bool:
        nonlocal most
        most = max(most, scrape(port, "streamkit_autoscale_workers") or 0)
        return echo.caught_up()

    wait_for(drained, 120, "the burst to be processed")
    assert most >= 2, f"the burst never ran more than {most:.0f} worker(s)"
    wait_for(lambda: scrape(port, "streamkit_autoscale_workers") == 0, 60, "scale to zero")

    echo.produce(200, start=3000)
    wait_for(echo.caught_up, 60, "new records to wake a worker")
    code, err = echo.stop(run)
    assert code == 0, err[-3000:]

    outputs = Counter(r["n"] for r in echo.read(echo.output, 3200))
    assert set(outputs) == set(range(3200))  # nothing lost
    duplicates = sum(outputs.values()) - 3200
    assert duplicates <= 500, f"{duplicates} duplicates"  # bounded: commits every 0.2 s
    assert re.search(r"-> [23] worker\(s\): scale up: lag \d+ / 200 per worker", err), err
    assert re.search(r"0 -> 1 worker\(s\): scale up: lag \d+ / 200 per worker", err), err
    assert re.search(r"-> 0 worker\(s\): scale down: lag 0 <= activation 0", err), err
    assert "drained and stopped" in err
