"""`make demo`: the orders pipeline on a real broker, with a summary.

Creates the app's topics, starts ``streamkit run processors.orders --workers 2``, produces
generated OrderPlaced events (Avro, single-object encoding), waits until the group has
processed and committed all of them, stops the workers with SIGTERM and prints what went
where. Uses ``STREAMKIT_BOOTSTRAP_SERVERS`` (the Makefile starts a local broker for it).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from processors.generator import orders
from processors.orders import PLACED, VALIDATED, app
from streamkit import AppClient, Settings

ROOT = Path(__file__).resolve().parent.parent


def _wait(condition: Callable[[], bool], workers: subprocess.Popen[bytes], timeout: float,
          what: str) -> str | None:  # fmt: skip
    """None once ``condition`` holds; else why not (the workers exited, or time ran out)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if workers.poll() is not None:
            return f"the workers exited with {workers.returncode} before {what}"
        if time.monotonic() > deadline:
            return f"{what} did not happen within {timeout:.0f}s"
        time.sleep(0.2)
    return None


def _totals(client: AppClient) -> dict[str, int]:
    ends = client.end_offsets()
    return {name: sum(e for (t, _), e in ends.items() if t == name) for name in app.topics}


def main() -> int:
    """Run the demo; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    settings = Settings.from_env()
    print(f"streamkit demo on {settings.bootstrap_servers}")
    with AppClient(app, settings) as client:
        client.create_topics()
        before = _totals(client)
        workers = subprocess.Popen(
            [sys.executable, "-m", "streamkit", "run", "processors.orders",
             "--workers", str(args.workers), "--log-level", "warning"],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        try:
            every = PLACED.partitions + VALIDATED.partitions
            error = _wait(lambda: client.assigned() >= every, workers, args.timeout,
                          "the workers joined the group")  # fmt: skip
            if error is not None:
                print(f"error: {error}", file=sys.stderr)
                return 1
            started = time.monotonic()
            for order in orders(args.events, seed=int(time.time())):
                client.send(PLACED.name, order, key=order["customer_id"])
            client.flush()
            print(f"produced {args.events} OrderPlaced events; {args.workers} workers "
                  "processing...")  # fmt: skip
            error = _wait(client.caught_up, workers, args.timeout, "every event was committed")
            if error is not None:
                print(f"error: {error}", file=sys.stderr)
                return 1
            elapsed = time.monotonic() - started
            after = _totals(client)
        finally:
            if workers.poll() is None:
                workers.send_signal(signal.SIGTERM)
                workers.wait(timeout=60)

    print()
    print(f"{'topic':<20}{'records':>10}")
    for name in app.topics:
        print(f"{name:<20}{after[name] - before[name]:>10}")
    print()
    print(
        f"{args.events} events through validate → fulfil / large_orders, processed and "
        f"committed in {elapsed:.2f}s ({args.events / elapsed:,.0f} events/s end to end, "
        f"including the 1 s commit interval); "
        f"workers stopped with exit code {workers.returncode}"
    )
    return 0 if workers.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
