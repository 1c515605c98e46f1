"""Windows and timers on a real broker: every window's final result equals a batch
computation over the input (an oracle), after a clean run, a ``kill -9`` mid-window and
restart, and a rebalance 1 -> 2 -> 1; windows close by idleness with no further input;
every late record is in the late topic; timers (a processor's, an aggregate's) set before a
kill fire after the restart, once."""

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from streamkit.ops.admin import admin_client, delete_topics
from streamkit.ops.local_broker import free_port
from streamkit.records import key_partition
from tests.integration.helpers import Processes, create_app_topics, read_all
from tests.integration.runtime.conftest import wait_for
from tests.integration.state.conftest import children_of

ROOT = Path(__file__).resolve().parents[3]
APP = "tests.integration.apps.windows"
MINUTE = 60_000
# Recent, on a minute: older records would go with the broker's 7-day retention mid-test.
T0 = (int(time.time() * 1000) // MINUTE - 120) * MINUTE
GRACE = 5_000


@dataclass
class Windows:
    bootstrap: str
    config: dict[str, Any]
    tag: str
    state_dir: Path
    runs: Processes  # the `streamkit run`s it started
    partitions: int = 3
    sent: list[tuple[str, int, int]] = field(default_factory=list)

    def topic(self, name: str) -> str:
        return f"win-{name}-{self.tag}"

    @property
    def group(self) -> str:
        return f"win-{self.tag}"

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "STREAMKIT_BOOTSTRAP_SERVERS": self.bootstrap,
            "STREAMKIT_STATE_DIR": str(self.state_dir),
            "STREAMKIT_KAFKA_CONSUMER_SESSION_TIMEOUT_MS": "6000",
            "STREAMKIT_KAFKA_PRODUCER_TRANSACTION_TIMEOUT_MS": "15000",
            "WIN_GROUP": self.group,
            "WIN_VIEWS": self.topic("views"),
            "WIN_COUNTS": self.topic("counts"),
            "WIN_ORDERS": self.topic("orders"),
            "WIN_REMINDERS": self.topic("reminders"),
            "WIN_OPEN": self.topic("open"),
            "WIN_PARTITIONS": str(self.partitions),
            "PYTHONPATH": str(ROOT),
            **extra,
        }

    def start(self, *args: str, **env: str) -> subprocess.Popen[bytes]:
        return self.runs.start(
            [
                sys.executable,
                "-m",
                "streamkit",
                "run",
                APP,
                "--batch-size",
                "50",
                "--commit-interval",
                "0.3",
                *args,
            ],
            self.env(**env),
        )

    def send_views(self, count: int, seed: int) -> None:
        """``count`` views, ~1 s of event time apart, one in eight 5-20 s behind."""
        producer = Producer({**self.config, "enable.idempotence": True, "linger.ms": 5})
        t = T0 + len(self.sent) * 1000
        for n in range(len(self.sent), len(self.sent) + count):
            page = f"p{(n * 7 + seed) % 5}"
            t += 1000
            at = t - (5000 + (n * 13) % 15_000 if n % 8 == 7 else 0)
            self.sent.append((page, at, n))
            producer.produce(
                self.topic("views"),
                orjson.dumps({"page": page, "n": n}),
                page.encode(),
                timestamp=at,
            )
        assert producer.flush(30) == 0

    def results(self) -> list[tuple[str, int, int, int]]:
        """Every result written: (page, start, end, count)."""
        found = []
        for msg in read_all(self.config, self.topic("counts"), isolation="read_committed"):
            doc = orjson.loads(msg.value())
            found.append((doc["key"], doc["start"], doc["end"], doc["value"]))
        return found

    def late(self) -> set[int]:
        return set(self.late_records())

    def late_records(self) -> list[int]:
        """The ``n`` of each record in the late topic."""
        topic = f"{self.group}-per-minute-late"
        return [
            orjson.loads(m.value())["n"]
            for m in read_all(self.config, topic, isolation="read_committed")
        ]

    def oracle(self) -> tuple[dict[tuple[str, int, int], int], set[int]]:
        """The windows' counts and the late records, by the rules: a record is late when
        its partition's stream time reached its window's end plus the grace."""
        counts: dict[tuple[str, int, int], int] = defaultdict(int)
        late, stream = set(), defaultdict(lambda: -1)
        for page, t, n in self.sent:
            partition = key_partition(page.encode(), self.partitions)
            start = t - t % MINUTE
            if stream[partition] >= start + MINUTE + GRACE:
                late.add(n)
            else:
                counts[(page, start, start + MINUTE)] += 1
            stream[partition] = max(stream[partition], t)
        return dict(counts), late


@pytest.fixture
def windows(
    kafka_bootstrap: str, kafka_config: dict[str, Any], tmp_path: Path
) -> Iterator[Windows]:
    setup = Windows(
        kafka_bootstrap,
        kafka_config,
        uuid.uuid4().hex[:8],
        tmp_path / "state",
        Processes(tmp_path),
    )
    made = create_app_topics(APP, setup.env())
    yield setup
    setup.runs.stop_all(timeout=60)
    delete_topics(admin_client(kafka_config), made)


def _check(windows: Windows, *, exactly_once: bool) -> None:
    """Every window's final result is the oracle's; every late record is in the late topic."""
    counts, late = windows.oracle()
    results = windows.results()
    by_window: dict[tuple[str, int, int], set[int]] = defaultdict(set)
    for page, start, end, value in results:
        by_window[(page, start, end)].add(value)
    assert {w: v for w, values in by_window.items() for v in values} == counts
    assert all(len(values) == 1 for values in by_window.values())  # duplicates identical
    if exactly_once:
        assert max(Counter((p, s, e) for p, s, e, _ in results).values()) == 1
    assert late
    assert windows.late() == late  # exactly the late records (copies of them, at least once)
    if exactly_once:
        assert len(windows.late_records()) == len(late)
    assert sum(counts.values()) + len(late) == len(windows.sent)


def _all_closed(windows: Windows, timeout: float = 120) -> None:
    """Wait until every window of the oracle has a result; else fail naming the missing."""
    expected = set(windows.oracle()[0])
    deadline = time.monotonic() + timeout
    while True:
        missing = expected - {(p, s, e) for p, s, e, _ in windows.results()}
        if not missing:
            return
        if time.monotonic() > deadline:
            pytest.fail(
                f"after {timeout:.0f}s, no result for {sorted(missing)[:5]} "
                f"({len(missing)} of {len(expected)} windows)"
            )
        time.sleep(0.3)


@pytest.mark.parametrize("eos", [False, True], ids=["at-least-once", "exactly-once"])
def test_final_results_equal_the_oracle_after_a_clean_run(windows: Windows, eos: bool) -> None:
    run = windows.start(WIN_EOS="1" if eos else "0")
    windows.send_views(600, seed=1)
    # The last minute of each page closes by idleness: no record comes after it.
    _all_closed(windows, 90)
    _check(windows, exactly_once=eos)
    code, err = windows.runs.stop(run, 90)
    assert code == 0, err


@pytest.mark.parametrize("eos", [False, True], ids=["at-least-once", "exactly-once"])
def test_repeated_kill_9s_mid_window_keep_every_final_result(windows: Windows, eos: bool) -> None:
    mode = "1" if eos else "0"
    # Idle longer than the test's pauses (a caught-up worker's windows close then).
    run = windows.start(WIN_EOS=mode, WIN_DELAY_MS="3", WIN_IDLE_S="10")
    windows.send_views(900, seed=2)
    closed = 10
    for seed in (3, 4, 5):  # three kills, each while windows close and records flow
        wait_for(lambda n=closed: len(windows.results()) >= n, 90, "more windows closed")
        (worker,) = children_of(run.pid)
        os.kill(worker, signal.SIGKILL)  # mid-window: the supervisor starts a new worker
        wait_for(lambda w=worker: children_of(run.pid) not in ([], [w]), 60, "a new worker")
        windows.send_views(300, seed=seed)
        closed = len({(p, s, e) for p, s, e, _ in windows.results()}) + 3
    _all_closed(windows)
    _check(windows, exactly_once=eos)
    code, err = windows.runs.stop(run, 90)
    assert code == 0, err
    assert "exited with code -9; restarting" in err


def test_a_rebalance_one_two_one_keeps_every_final_result(windows: Windows) -> None:
    # Idle longer than the test's pauses (a caught-up worker's windows close then).
    first = windows.start(WIN_DELAY_MS="2", WIN_IDLE_S="10")
    windows.send_views(400, seed=4)
    second = windows.start(WIN_DELAY_MS="2", WIN_IDLE_S="10")
    windows.send_views(400, seed=5)
    wait_for(lambda: len(windows.results()) >= 20, 90, "windows closing with two workers")
    code, err = windows.runs.stop(second, 90)
    assert code == 0, err
    windows.send_views(300, seed=6)
    _all_closed(windows)
    _check(windows, exactly_once=False)
    code, err = windows.runs.stop(first, 90)
    assert code == 0, err


def test_timers_set_before_a_kill_fire_after_the_restart_once(windows: Windows) -> None:
    run = windows.start(WIN_EOS="1", WIN_TIMER_S="4")
    producer = Producer({**windows.config, "enable.idempotence": True})
    for n in range(40):
        producer.produce(
            windows.topic("orders"), orjson.dumps({"id": f"o{n}", "n": n}), f"o{n}".encode()
        )
    assert producer.flush(30) == 0
    changelogs = [f"{windows.group}-{name}-timers-changelog" for name in ("placed", "opened")]
    wait_for(
        lambda: all(
            len(read_all(windows.config, changelog, isolation="read_committed")) >= 40
            for changelog in changelogs
        ),
        60,
        "every timer set (in the changelogs)",
    )
    (worker,) = children_of(run.pid)
    os.kill(worker, signal.SIGKILL)  # before any timer is due

    def fired() -> list[int]:
        records = read_all(windows.config, windows.topic("reminders"), isolation="read_committed")
        return [orjson.loads(m.value())["n"] for m in records]

    def expired() -> list[int]:
        records = read_all(windows.config, windows.topic("open"), isolation="read_committed")
        return [doc["n"] for doc in (orjson.loads(m.value()) for m in records) if doc["expired"]]

    assert fired() == []
    assert expired() == []
    wait_for(
        lambda: len(fired()) >= 40 and len(expired()) >= 40,
        90,
        "every timer fired after the restart",
    )
    assert sorted(fired()) == list(range(40))  # each once (exactly once)
    assert sorted(expired()) == list(range(40))  # each order's state, once
    code, err = windows.runs.stop(run, 90)
    assert code == 0, err


def test_a_keys_windows_answer_state_get_and_http_in_a_time_range(windows: Windows) -> None:
    port = free_port()
    run = windows.start("--http-port", str(port), WIN_IDLE_S="3600")
    producer = Producer({**windows.config, "enable.idempotence": True})
    # Two views in the first minute, one in the next: within grace, both windows stay open.
    for n, at in enumerate((T0 + 1000, T0 + 2000, T0 + MINUTE + 1000)):
        producer.produce(
            windows.topic("views"), orjson.dumps({"page": "p1", "n": n}), b"p1", timestamp=at
        )
    assert producer.flush(30) == 0
    both = [
        {"start": T0, "end": T0 + MINUTE, "value": 2, "closed": False},
        {"start": T0 + MINUTE, "end": T0 + 2 * MINUTE, "value": 1, "closed": False},
    ]

    def http(query: str = "") -> Any:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{port}/state/per-minute/p1{query}", timeout=5
            ) as answer:
                return orjson.loads(answer.read())["state"]
        except OSError:  # not up yet, or the key not there yet (404)
            return None

    wait_for(lambda: http() == both, 60, "both windows over HTTP")
    assert http(f"?from={T0 + MINUTE}") == both[1:]
    assert http(f"?to={T0 + MINUTE}") == both[:1]

    def cli(*extra: str) -> Any:
        got = subprocess.run(
            [
                sys.executable,
                "-m",
                "streamkit",
                "state",
                "get",
                "--app",
                APP,
                "per-minute",
                "p1",
                *extra,
            ],
            env=windows.env(),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return orjson.loads(got.stdout) if got.returncode == 0 else None

    wait_for(lambda: cli() == both, 60, "both windows from the changelog")
    assert cli("--from", str(T0 + MINUTE)) == both[1:]
    assert cli("--to", str(T0 + MINUTE)) == both[:1]
    code, err = windows.runs.stop(run, 90)
    assert code == 0, err
