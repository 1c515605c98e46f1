"""A durable workflow on a real broker.

- 1,000 instances under ``exactly_once`` while workers are killed (``kill -9``) again and
  again: every instance ends in exactly one terminal state, and every side effect (an
  emit) is visible exactly once, compensations exactly for the completed steps, in
  reverse order;
- at least once, waits time out while no worker runs: their timers fire after the
  restart; ``streamkit workflow list|show|graph`` show the instances as they are;
- with two workers, an answer held up by a frozen worker (its approvals partition) wins
  over the timeout of a wait the other worker holds.
"""

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from streamkit.ops.admin import admin_client, delete_topics
from streamkit.records import key_partition
from tests.integration.helpers import Processes, create_app_topics, read_all
from tests.integration.runtime.conftest import wait_for
from tests.integration.state.conftest import children_of

ROOT = Path(__file__).resolve().parents[3]
APP = "tests.integration.apps.workflows"


@dataclass
class Flow:
    config: dict[str, Any]
    env: dict[str, str]
    tag: str
    eos: bool
    runs: Processes  # the `streamkit run`s it started

    def topic(self, name: str) -> str:
        return f"wf-{name}-{self.tag}"

    def start(self, **env: str) -> subprocess.Popen[bytes]:
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
                "--restart-backoff",
                "0.2",
            ],
            {**self.env, **env},
        )

    def send(self, topic: str, values: list[dict[str, Any]]) -> None:
        producer = Producer({**self.config, "enable.idempotence": True, "linger.ms": 5})
        for value in values:
            producer.produce(self.topic(topic), orjson.dumps(value), f"k{value['id']}".encode())
        assert producer.flush(30) == 0

    def read(self, topic: str) -> list[tuple[str, Any]]:
        isolation = "read_committed" if self.eos else "read_uncommitted"
        return [
            ((m.key() or b"").decode(), orjson.loads(m.value() or b"null"))
            for m in read_all(self.config, self.topic(topic), isolation=isolation)
        ]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "streamkit", *args, "--app", APP],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def _flow(
    config: dict[str, Any], bootstrap: str, state: Path, eos: bool, wait: str, logs: Path
) -> Flow:
    tag = uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        "STREAMKIT_BOOTSTRAP_SERVERS": bootstrap,
        "STREAMKIT_STATE_DIR": str(state),
        "WF_TAG": tag,
        "WF_EOS": "1" if eos else "0",
        "WF_WAIT": wait,
        "PYTHONPATH": str(ROOT),
        "STREAMKIT_KAFKA_CONSUMER_SESSION_TIMEOUT_MS": "6000",
        "STREAMKIT_KAFKA_PRODUCER_TRANSACTION_TIMEOUT_MS": "15000",
    }
    return Flow(config, env, tag, eos, Processes(logs))


@pytest.fixture
def flows(kafka_bootstrap: str, kafka_config: dict[str, Any], tmp_path: Path) -> Iterator[Any]:
    made: list[Flow] = []
    topics: list[str] = []

    def make(eos: bool, wait: str) -> Flow:
        flow = _flow(
            kafka_config, kafka_bootstrap, tmp_path / f"state{len(made)}", eos, wait, tmp_path
        )
        topics.extend(create_app_topics(APP, flow.env))
        made.append(flow)
        return flow

    yield make
    for flow in made:
        flow.runs.stop_all(timeout=60)
    if topics:
        delete_topics(admin_client(kafka_config), topics)


def _expected(n: int, approved: bool) -> tuple[str, list[str]]:
    """What order ``n`` ends as, and its side effects in order."""
    if n % 7 == 0 and not approved:
        return "compensated", ["reserve", "release"]  # rejected (or its approval timed out)
    if n % 5 == 0:
        return "compensated", ["reserve", "release"]  # declined: charge did not complete
    if n % 13 == 0:
        return "compensated", ["reserve", "charge", "refund", "release"]
    return "completed", ["reserve", "charge", "ship"]


def test_a_thousand_instances_end_once_with_each_side_effect_once_across_kills(
    flows: Any,
) -> None:
    # Every wait gets its answer (an approval or a rejection): a wall-clock timeout would
    # race the kills (an answer already in Kafka but not yet read when the worker comes
    # back can lose to a timer that came due while it was down). Timeouts after a restart
    # are the next test's.
    flow = flows(eos=True, wait="10m")
    count = 1000
    approved = {n for n in range(count) if n % 14 == 0}
    answers = [{"id": f"w{n}", "by": "ann", "ok": n in approved} for n in range(0, count, 7)]
    # Half the answers come before their order (kept for the instance), half after.
    flow.send("approvals", [a for a in answers if int(a["id"][1:]) % 4])
    run = flow.start()
    rng = random.Random(7)
    for first in range(0, count, 250):
        flow.send("orders", [{"id": f"w{n}", "n": n} for n in range(first, first + 250)])
        if first == 500:
            flow.send("approvals", [a for a in answers if int(a["id"][1:]) % 4 == 0])
        time.sleep(rng.uniform(0.5, 2.0))  # a kill at a random point of the run
        wait_for(lambda: bool(children_of(run.pid)), 60, "the supervisor's worker (again)")
        os.kill(children_of(run.pid)[0], signal.SIGKILL)

    ends: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def all_ended() -> bool:
        ends.clear()
        for key, value in flow.read("done"):
            ends[key].append(value)
        return len(ends) == count

    wait_for(all_ended, 300, f"all {count} instances to end")
    effects: dict[str, list[str]] = defaultdict(list)
    for key, value in flow.read("effects"):
        assert key == value["id"]
        effects[key].append(value["effect"])
    for n in range(count):
        status, expected = _expected(n, n in approved)
        (end,) = ends[f"w{n}"]  # exactly one terminal state
        assert end["status"] == status, (n, end)
        assert effects[f"w{n}"] == expected, (n, effects[f"w{n}"])  # each once, in order
    assert flow.runs.stop(run, 60)[0] == 0


def test_waits_time_out_after_a_restart_and_operators_see_the_instances(flows: Any) -> None:
    flow = flows(eos=False, wait="4s")
    run = flow.start()
    flow.send("orders", [{"id": f"w{n}", "n": n} for n in (1, 7, 14)])  # 7 and 14 wait
    waiting: list[str] = []

    def two_waiting() -> bool:
        listed = flow.cli("workflow", "list", "--state", "waiting", "--json")
        assert listed.returncode == 0, listed.stderr
        waiting[:] = sorted(orjson.loads(line)["id"] for line in listed.stdout.splitlines())
        return waiting == ["w14", "w7"]

    wait_for(two_waiting, 90, "two instances waiting for their approval")
    waited_from = time.time()
    code, errors = flow.runs.stop(run, 60)
    assert code == 0, errors
    shown = flow.cli("workflow", "show", "w7")
    assert shown.returncode == 0, shown.stderr
    w7 = orjson.loads(shown.stdout)
    assert (w7["status"], w7["step"], w7["waiting"]["event"]) == (
        "waiting",
        "approval",
        flow.topic("approvals"),
    )
    assert [h.get("step") for h in w7["history"]] == [None, "reserve", "approval"]
    # No worker runs while the waits' timeouts pass; their timers fire after the restart.
    wait_for(lambda: time.time() > waited_from + 5, 10, "the timeouts to pass")
    flow.start()
    flow.send("approvals", [{"id": "w14", "by": "late"}])  # after its timeout: ignored
    ends: dict[str, dict[str, Any]] = {}
    wait_for(
        lambda: ends.update(dict(flow.read("done"))) or len(ends) == 3,
        90,
        "all three instances to end",
    )
    assert ends["w1"]["status"] == "completed"
    for key in ("w7", "w14"):
        assert ends[key]["status"] == "compensated"
        assert ends[key]["error"] == (
            f"step approval timed out waiting for {flow.topic('approvals')} after 4s"
        )
        assert ends[key]["ended"] >= waited_from * 1000
    listed = flow.cli("workflow", "list", "--state", "compensated", "--json")
    assert sorted(orjson.loads(line)["id"] for line in listed.stdout.splitlines()) == ["w14", "w7"]
    missing = flow.cli("workflow", "show", "nope")
    assert missing.returncode == 3
    assert "workflow orders has no instance 'nope'" in missing.stderr
    graph = flow.cli("workflow", "graph")
    assert graph.returncode == 0, graph.stderr
    assert "    approval --> compensating: timeout" in graph.stdout.splitlines()


def test_answers_written_while_no_worker_runs_win_over_the_timeouts_after_the_restart(
    flows: Any,
) -> None:
    # An answer is judged by when it was written, not by when a worker read it: the
    # worker is down past the waits' deadlines while two of four waiting instances get
    # their approval, each before its deadline.
    flow = flows(eos=False, wait="15s")
    run = flow.start()
    flow.send("orders", [{"id": f"w{n}", "n": n} for n in (7, 14, 21, 28)])  # all wait

    def all_waiting() -> bool:
        listed = flow.cli("workflow", "list", "--state", "waiting", "--json")
        assert listed.returncode == 0, listed.stderr
        return len(listed.stdout.splitlines()) == 4

    wait_for(all_waiting, 90, "four instances waiting for their approval")
    code, errors = flow.runs.stop(run, 60)
    assert code == 0, errors
    answered_at = time.time() * 1000
    flow.send("approvals", [{"id": "w7", "by": "ann"}, {"id": "w21", "by": "bob"}])
    deadlines = []
    for key in ("w7", "w14", "w21", "w28"):
        shown = flow.cli("workflow", "show", key)
        assert shown.returncode == 0, shown.stderr
        deadlines.append(orjson.loads(shown.stdout)["waiting"]["until"])
    assert answered_at < min(deadlines), "the approvals must be written before the deadlines"
    # No worker runs until every deadline is well past: each timeout is overdue at the
    # restart, while the approvals wait unread in their topic.
    wait_for(lambda: time.time() * 1000 > max(deadlines) + 5_000, 60, "the deadlines to pass")
    flow.start()
    ends: dict[str, dict[str, Any]] = {}
    wait_for(
        lambda: ends.update(dict(flow.read("done"))) or len(ends) == 4,
        90,
        "all four instances to end",
    )
    assert {key: end["status"] for key, end in ends.items()} == {
        "w7": "completed",
        "w21": "completed",
        "w14": "compensated",
        "w28": "compensated",
    }


def test_answers_a_frozen_worker_holds_win_over_timeouts_another_worker_fires(
    flows: Any, kafka_config: dict[str, Any], tmp_path: Path
) -> None:
    # Two workers. The one holding an approvals partition is frozen (SIGSTOP) before the
    # answers come, past the waits' deadlines (its partitions move only after a 20 s
    # session timeout); the other holds instances waiting for those answers: their
    # timeouts wait until the group has committed the approvals written before them.
    flow = flows(eos=False, wait="10s")
    session = {"STREAMKIT_KAFKA_CONSUMER_SESSION_TIMEOUT_MS": "20000"}
    runs = [flow.start(**session, STREAMKIT_STATE_DIR=str(tmp_path / f"w{i}")) for i in (0, 1)]
    held = _assignments(kafka_config, f"wf-{flow.tag}", runs)
    approvals, repartition = flow.topic("approvals"), f"wf-{flow.tag}-orders-repartition"
    frozen, live = next(
        (a, b)
        for a, b in ((0, 1), (1, 0))
        if any(t == approvals for t, _ in held[a]) and any(t == repartition for t, _ in held[b])
    )

    def crossed(n: int) -> bool:  # its answer in the frozen one's partition, its wait not
        answer = (approvals, key_partition(f"kw{n}".encode(), 2))
        wait = (repartition, key_partition(f"w{n}".encode(), 3))
        return answer in held[frozen] and wait in held[live]

    waiting = [7 * k for k in range(1, 200)]
    chosen = [n for n in waiting if crossed(n)][:4] + [n for n in waiting if not crossed(n)][:4]
    flow.send("orders", [{"id": f"w{n}", "n": n} for n in chosen])

    def all_waiting() -> bool:
        listed = flow.cli("workflow", "list", "--state", "waiting", "--json")
        assert listed.returncode == 0, listed.stderr
        return len(listed.stdout.splitlines()) == len(chosen)

    wait_for(all_waiting, 90, "eight instances waiting for their approval")
    shown = [flow.cli("workflow", "show", f"w{n}").stdout for n in chosen]
    until = [orjson.loads(doc)["waiting"]["until"] for doc in shown]
    stopped = [runs[frozen].pid, *children_of(runs[frozen].pid)]
    answered = chosen[:3] + chosen[4:6]
    try:
        for pid in stopped:
            os.kill(pid, signal.SIGSTOP)
        flow.send("approvals", [{"id": f"w{n}", "by": "ann"} for n in answered])
        answered_at = time.time() * 1000
        assert answered_at < min(until), "the approvals must be written before the deadlines"
        ends: dict[str, dict[str, Any]] = {}
        wait_for(
            lambda: ends.update(dict(flow.read("done"))) or len(ends) == len(chosen),
            120,
            "all eight instances to end",
        )
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
    assert {key: end["status"] for key, end in ends.items()} == {
        f"w{n}": _expected(n, n in answered)[0] for n in chosen
    }


def _assignments(
    config: dict[str, Any], group: str, runs: list[subprocess.Popen[bytes]]
) -> list[set[tuple[str, int]]]:
    """The partitions each run's worker holds, once the group is stable with both."""
    admin = admin_client(config)
    found: list[set[tuple[str, int]]] = []

    def stable() -> bool:
        (future,) = admin.describe_consumer_groups([group], request_timeout=10).values()
        described = future.result()
        by_pid = {
            int(m.client_id.rsplit("-", 1)[1]): {
                (tp.topic, tp.partition) for tp in m.assignment.topic_partitions
            }
            for m in described.members
        }
        workers = [children_of(run.pid) for run in runs]
        if str(described.state) != "ConsumerGroupState.STABLE" or len(by_pid) != len(runs):
            return False
        if any(len(w) != 1 or w[0] not in by_pid for w in workers):
            return False
        found[:] = [by_pid[w[0]] for w in workers]
        return sum(len(p) for p in found) == 8  # orders 3, approvals 2, repartition 3

    wait_for(stable, 90, "both workers in the group, every partition assigned")
    return found
