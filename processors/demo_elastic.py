"""`make demo-elastic`: workers following the load, up, down and to zero.

Runs ``streamkit run processors.receipts --autoscale 0..4`` (a receipt email per invoice,
about 5 ms of mail API each), then sends two bursts of invoices. The supervisor starts
workers as the lag grows, drains them when it has stayed low for the cool-down, and
stops the last one when there is nothing left to send; a second, smaller burst wakes it
again. Prints the timeline (every decision with its reason, and the lag and workers
every two seconds), checks that every invoice got its receipt, and draws lag and workers
over time into a PNG (with matplotlib: ``pip install 'streamkit[plot]'``). Uses
``STREAMKIT_BOOTSTRAP_SERVERS`` (the Makefile starts a local broker for it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from processors.receipts import INVOICES, SENT, app
from streamkit import AppClient, Settings

ROOT = Path(__file__).resolve().parent.parent
_DECISION = re.compile(r"^(\S+ \S+) INFO\s+\[supervisor\] streamkit.autoscale: (.*)$")


class Gauges:
    """The supervisor's autoscaling gauges, sampled every half second in a thread."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.samples: list[tuple[float, int, int]] = []  # (time, lag, workers)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def read(self) -> tuple[int, int] | None:
        """(lag, workers) now, None while the supervisor does not answer."""
        try:
            with urllib.request.urlopen(self.url, timeout=2) as reply:  # noqa: S310 - ours
                text = reply.read().decode()
        except OSError:
            return None
        found = dict(re.findall(r"^(streamkit_autoscale_\w+)\{[^}]*\} (\S+)$", text, re.M))
        if "streamkit_autoscale_lag" not in found:
            return None  # no measurement yet
        return int(float(found["streamkit_autoscale_lag"])), int(
            float(found["streamkit_autoscale_workers"])
        )

    def _sample(self) -> None:
        while not self._done.wait(0.5):
            now = self.read()
            if now is not None:
                self.samples.append((time.time(), *now))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


def _free_ports(count: int) -> int:
    """The first of ``count`` consecutive ports free now: the supervisor serves on the
    first, worker *i* on the first + 1 + *i*. Below the kernel's ephemeral range (32768 up
    on Linux), whose ports the app's own Kafka connections may hold (an ephemeral port's
    neighbours were taken so, and two workers could not start)."""
    rng = random.Random()  # noqa: S311 - spreads port choices; nothing secret
    for _ in range(500):
        base = rng.randrange(20000, 32000 - count)
        if all(_bindable(base + i) for i in range(count)):
            return base
    raise SystemExit(f"error: no {count} consecutive free ports between 20000 and 32000")


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait(
    condition: Callable[[], bool], run: subprocess.Popen[bytes], timeout: float, what: str
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if run.poll() is not None:
            raise SystemExit(f"error: the app exited with {run.returncode} before {what}")
        if time.monotonic() > deadline:
            raise SystemExit(f"error: {what} did not happen within {timeout:.0f}s")
        time.sleep(0.2)


def _burst(client: AppClient, run_id: str, first: int, count: int) -> None:
    for n in range(first, first + count):
        customer = f"c-{n % 97}"
        invoice = {
            "order_id": f"{run_id}-{n}",
            "customer_id": customer,
            "amount_cents": 500 + n % 9000,
        }
        client.send(INVOICES.name, invoice, key=customer)
    client.flush()


def _decisions(log: Path) -> list[tuple[float, str]]:
    found = []
    for line in log.read_text(errors="replace").splitlines():
        match = _DECISION.match(line)
        if match:
            when = dt.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f")
            found.append((when.timestamp(), match.group(2)))
    return found


def _plot(
    samples: list[tuple[float, int, int]], t0: float, png: Path, events: list[tuple[float, str]]
) -> str:
    try:
        import matplotlib  # noqa: PLC0415 - optional

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return "no PNG: matplotlib is not installed (pip install 'streamkit[plot]')"
    samples = sorted(samples)
    seconds = [t - t0 for t, _, _ in samples]
    fig, lag_axis = plt.subplots(figsize=(9, 4.5))
    lag_axis.plot(seconds, [lag for _, lag, _ in samples], color="tab:blue", label="lag")
    lag_axis.set_xlabel("seconds")
    lag_axis.set_ylabel("lag (records behind)", color="tab:blue")
    workers_axis = lag_axis.twinx()
    workers_axis.step(
        seconds, [w for _, _, w in samples], where="post", color="tab:orange", label="workers"
    )
    workers_axis.set_ylabel("workers", color="tab:orange")
    workers_axis.set_ylim(-0.2, max([w for _, _, w in samples] + [1]) + 0.5)
    for when, label in events:
        lag_axis.axvline(when - t0, color="grey", linestyle=":", linewidth=1)
        lag_axis.annotate(
            label,
            (when - t0, lag_axis.get_ylim()[1] * 0.95),
            fontsize=8,
            rotation=90,
            va="top",
            ha="right",
            color="grey",
        )
    lag_axis.set_title("streamkit run processors.receipts --autoscale 0..4")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return f"plot: {png}"


def main() -> int:
    """Run the elastic demo; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--burst", type=int, default=4000, help="invoices in the first burst")
    parser.add_argument("--second-burst", type=int, default=600)
    parser.add_argument("--max-workers", type=int, default=4)
    parser.add_argument("--lag-per-worker", type=int, default=400)
    parser.add_argument("--cooldown", type=float, default=6.0, help="seconds")
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument("--png", type=Path, default=ROOT / ".streamkit" / "demo-elastic.png")
    args = parser.parse_args()
    settings = Settings.from_env()
    print(f"streamkit elastic demo on {settings.bootstrap_servers}")
    port = _free_ports(args.max_workers + 1)
    log = args.png.with_suffix(".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    run_id = f"e{int(time.time())}"
    gauges = Gauges(port)
    events: list[tuple[float, str]] = []
    with AppClient(app, settings) as client, log.open("wb") as log_file:
        client.create_topics()
        run = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamkit",
                "run",
                "processors.receipts",
                "--autoscale",
                f"0..{args.max_workers}",
                "--lag-per-worker",
                str(args.lag_per_worker),
                "--cooldown",
                f"{args.cooldown}s",
                "--http-port",
                str(port),
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stderr=log_file,
        )
        t0 = time.time()
        try:
            gauges.start()
            idle = lambda: (now := gauges.read()) is not None and now == (0, 0)  # noqa: E731
            _wait(idle, run, args.timeout, "the app was idle (no lag, no worker)")
            events.append((time.time(), f"burst of {args.burst:,}"))
            _burst(client, run_id, 0, args.burst)
            _wait(
                lambda: gauges.read() == (0, 0) and client.caught_up(),
                run,
                args.timeout,
                "the burst was sent and the workers scaled to zero",
            )
            events.append((time.time(), f"burst of {args.second_burst:,}"))
            _burst(client, run_id, args.burst, args.second_burst)
            _wait(
                lambda: gauges.read() == (0, 0) and client.caught_up(),
                run,
                args.timeout,
                "the second burst was sent and the workers scaled to zero again",
            )
            gauges.samples.append((time.time(), 0, 0))  # the end, as the wait just saw it
        finally:
            gauges.stop()
            if run.poll() is None:
                run.send_signal(signal.SIGTERM)
                run.wait(timeout=60)
        sent = Counter(
            e.value["order_id"]
            for e in client.read(SENT.name)
            if e.value["order_id"].startswith(f"{run_id}-")
        )
    total = args.burst + args.second_burst
    _timeline(t0, events, _decisions(log), gauges.samples)
    missing = total - len(sent)
    print()
    print(
        f"{total:,} invoices -> {len(sent):,} receipts ({missing} missing, "
        f"{sum(sent.values()) - len(sent)} sent twice); the app stopped with exit code "
        f"{run.returncode}"
    )
    print(_plot(gauges.samples, t0, args.png, events))
    print(f"the supervisor's log: {log}")
    return 0 if missing == 0 and run.returncode == 0 else 1


def _timeline(
    t0: float,
    events: list[tuple[float, str]],
    decisions: list[tuple[float, str]],
    samples: list[tuple[float, int, int]],
) -> None:
    print()
    print(f"{'t (s)':>7}  {'lag':>6}  workers")
    rows: list[tuple[float, str]] = [(t, f"-- {label} sent") for t, label in events]
    rows += [(t, f"-- {text}") for t, text in decisions]
    shown = -2.0
    for t, lag, workers in samples:
        if t - shown >= 2.0:
            rows.append((t, f"{lag:>6}  {'#' * workers} {workers}"))
            shown = t
    for t, text in sorted(rows):
        print(f"{t - t0:>7.1f}  {text}")


if __name__ == "__main__":
    sys.exit(main())
