"""`make demo`: the example pipelines on a real broker, with a summary.

Creates the topics of the orders, clicks and checkout apps, starts ``streamkit run
processors.orders --workers 2``, ``streamkit run processors.clicks`` and ``streamkit run
processors.checkout``, produces generated OrderPlaced events, page views and customer
profiles (Avro, single-object encoding), waits until each group has processed and
committed all of them (the clickstream's last minute closed, every validated order
decided), stops the workers with SIGTERM and prints what went where. Uses
``STREAMKIT_BOOTSTRAP_SERVERS`` (the Makefile starts a local broker for it).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from processors import checkout, clicks
from processors.generator import PAGES, customers, orders, page_views
from processors.orders import PLACED, VALIDATED, app
from streamkit import AppClient, Settings

ROOT = Path(__file__).resolve().parent.parent


def _wait(
    condition: Callable[[], bool], workers: subprocess.Popen[bytes], timeout: float, what: str
) -> str | None:
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


def _start(target: str, workers: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamkit",
            "run",
            target,
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def _clickstream(settings: Settings, timeout: float) -> list[str] | str:
    """Run the clicks app over 6 minutes of page views; its summary, or what went wrong."""
    minutes = 6
    with AppClient(clicks.app, settings) as client:
        client.create_topics()
        # Event time starts at this minute, or after the windows of an earlier demo run
        # on this broker (which moved the stream time on: earlier records would be late).
        ends = [int(e.value["end"].timestamp() * 1000) for e in client.read(clicks.PER_MINUTE.name)]
        start = max([int(time.time() * 1000) // 60_000 * 60_000, *(e + 60_000 for e in ends)])
        inputs = [clicks.VIEWS, clicks.PER_MINUTE, clicks.STATS]
        workers = _start("processors.clicks", 1)
        try:
            error = _wait(
                lambda: client.assigned() >= sum(t.partitions for t in inputs),
                workers,
                timeout,
                "the clicks worker joined its group",
            )
            if error is not None:
                return error
            views = list(page_views(minutes, 50, start_ms=start, spike=("pricing", 4)))
            for view in views:
                client.send(clicks.VIEWS.name, view, key=view["page"], timestamp=view["viewed_at"])
            client.flush()
            counted = len(PAGES) * minutes
            error = _wait(
                lambda: (
                    len(
                        [
                            e
                            for e in client.read(clicks.PER_MINUTE.name)
                            if e.value["start"].timestamp() * 1000 >= start
                        ]
                    )
                    >= counted
                    and client.caught_up()
                ),
                workers,
                timeout,
                "every minute's count (the last closes after 5 s idle)",
            )
            if error is not None:
                return error
            anomalies = [
                e.value
                for e in client.read(clicks.ANOMALIES.name)
                if e.value["minute"].timestamp() * 1000 >= start
            ]
        finally:
            if workers.poll() is None:
                workers.send_signal(signal.SIGTERM)
                workers.wait(timeout=60)
    flagged = f"{len(anomalies)} anomal{'y' if len(anomalies) == 1 else 'ies'} flagged"
    lines = [
        f"clicks: {len(views):,} page views over {minutes} minutes of event time -> {counted} "
        f"per-minute counts ({len(PAGES)} pages x {minutes} minutes, each closed once), " + flagged
    ]
    for a in anomalies:
        minute = (a["minute"].timestamp() * 1000 - start) // 60_000
        lines.append(
            f"  {a['page']}: minute {minute:.0f}, {a['views']} views (usual {a['usual']:.0f})"
        )
    return lines


def _checkout(settings: Settings, timeout: float, run: str, validated: int) -> list[str] | str:
    """Run the checkout app over this run's validated orders (``run``: their id prefix);
    its summary, or what went wrong."""
    with AppClient(checkout.app, settings) as client:
        client.create_topics()
        for profile in customers():
            client.send(checkout.PROFILES.name, profile, key=profile["customer_id"])
        client.flush()

        def decided() -> int:
            return sum(client.end_offsets(checkout.DECISIONS.name).values())

        before = decided()
        workers = _start("processors.checkout", 1)
        try:
            error = _wait(
                lambda: decided() - before >= validated and client.caught_up(),
                workers,
                timeout,
                "a decision for every validated order",
            )
            if error is not None:
                return error
        finally:
            if workers.poll() is None:
                workers.send_signal(signal.SIGTERM)
                workers.wait(timeout=60)
        mine = [
            e.value
            for e in client.read(checkout.DECISIONS.name)
            if e.value["order_id"].startswith(run)
        ]
    approved = sum(1 for d in mine if d["approved"])
    reasons = Counter(r for d in mine for r in d["reasons"])
    refused = ", ".join(f"{n} {reason}" for reason, n in reasons.most_common(4))
    return [
        f"checkout: {validated:,} validated orders fanned out to payment, stock and fraud "
        f"checks (fraud enriched from the customers table) and gathered into {len(mine):,} "
        f"decisions, one per order: {approved:,} approved; refused: {refused or 'none'}"
    ]


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
        workers = _start("processors.orders", args.workers)
        try:
            every = PLACED.partitions + VALIDATED.partitions
            error = _wait(
                lambda: client.assigned() >= every,
                workers,
                args.timeout,
                "the workers joined the group",
            )
            if error is not None:
                print(f"error: {error}", file=sys.stderr)
                return 1
            started = time.monotonic()
            seed = int(time.time())
            for order in orders(args.events, seed=seed):
                client.send(PLACED.name, order, key=order["customer_id"])
            client.flush()
            print(
                f"produced {args.events} OrderPlaced events; {args.workers} workers processing..."
            )
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
    if workers.returncode != 0:
        return 1
    print()
    summary = _clickstream(settings, args.timeout)
    if isinstance(summary, str):
        print(f"error: {summary}", file=sys.stderr)
        return 1
    print("\n".join(summary))
    validated = after[VALIDATED.name] - before[VALIDATED.name]
    decisions = _checkout(settings, args.timeout, f"o-{seed}-", validated)
    if isinstance(decisions, str):
        print(f"error: {decisions}", file=sys.stderr)
        return 1
    print("\n".join(decisions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
