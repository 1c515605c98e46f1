"""`make chaos`: every scenario in long cycles, then the table.

    python -m tests.e2e.chaos [--short] [--only NAME,...]

Uses STREAMKIT_BOOTSTRAP_SERVERS when set, else a local broker of its own (the
broker-restart scenario always starts its own). Exits 1 when any scenario broke a
guarantee.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from streamkit.ops.local_broker import LocalBroker, LocalBrokerConfig, free_port
from streamkit.settings import Settings
from tests.e2e.chaos.scenarios import LONG, SCENARIOS, SHORT, Row, run_scenario


def table(rows: list[Row]) -> str:
    """The rows as a markdown table."""
    lines = [
        "| scenario | faults | inputs | outputs | DLQ | lost | duplicates | longest recovery "
        "| verdict |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        verdict = "ok" if not r.problems else "; ".join(r.problems)
        lines.append(
            f"| {r.scenario} | {r.faults} | {r.inputs:,} | {r.outputs:,} | {r.dead_letters:,} "
            f"| {r.lost} | {r.duplicates} | {r.recovery_ms / 1000:.1f} s | {verdict} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--short", action="store_true", help="the CI sizes")
    parser.add_argument("--only", default="", help="comma-separated scenario names")
    args = parser.parse_args(argv)
    # SIGTERM (a timeout, Ctrl-C from a runner) unwinds like an error: the brokers,
    # clusters and workers this run started are stopped by their finally blocks.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    size = SHORT if args.short else LONG
    chosen = [s for s in SCENARIOS if not args.only or s.name in args.only.split(",")]
    bootstrap = os.environ.get("STREAMKIT_BOOTSTRAP_SERVERS")
    broker, data = None, None
    if not bootstrap:
        data = Path(tempfile.mkdtemp(prefix="chaos-broker-"))
        broker = LocalBroker(
            LocalBrokerConfig(
                data_dir=data, cache_dir=Settings.from_env().cache_dir, port=free_port(), heap="1g"
            )
        )
        bootstrap = broker.start().bootstrap_servers
    rows = []
    try:
        for scenario in chosen:
            print(f"{scenario.name}: {scenario.inject.__doc__ or ''}".strip(), flush=True)
            row = run_scenario(scenario, bootstrap, size)
            print(table([row]).splitlines()[-1], flush=True)
            rows.append(row)
    finally:
        if broker is not None:
            broker.stop()
        if data is not None:
            shutil.rmtree(data, ignore_errors=True)
    print()
    print(f"{size.records:,} records per scenario at {size.rate:,}/s, up to {size.faults} faults")
    print(table(rows))
    for r in rows:
        if len(r.recoveries_ms) > 1:
            each = ", ".join(f"{ms / 1000:.1f}" for ms in r.recoveries_ms)
            print(f"{r.scenario}: recovery after each fault (s): {each}")
    return 1 if any(r.problems for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
