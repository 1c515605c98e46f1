"""Windows through TestDriver: final results equal a batch computation over the same input
(an oracle), late records are never lost, windows close by idleness, time is virtual."""

import random
from collections import defaultdict
from typing import Any

import orjson
import pytest

from streamkit import App
from streamkit.errors import ConfigError
from streamkit.records import key_partition
from streamkit.testing import TestDriver

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
MINUTE = 60_000


def _app(**window: Any) -> App:
    app = App("w")
    app.topic("clicks", partitions=3, keyed_by="page")
    app.topic("counts", partitions=3)
    form = window.pop("form", "fold")
    fn: Any = {
        "fold": lambda state, click: (state or 0) + click["n"],
        "reduce": lambda a, b: {"n": a["n"] + b["n"]},
        "collect": lambda click: click["n"],
    }[form]
    app.window(input="clicks", store="per-page", key="page", output="counts", form=form, **window)(
        fn
    )
    return app


def _clicks(seed: int, count: int = 400, disorder_s: int = 20) -> list[tuple[str, int, int]]:
    """(page, event time, n): mostly in order, some up to ``disorder_s`` late."""
    rng = random.Random(seed)
    clicks, t = [], T0
    for n in range(count):
        t += rng.randint(0, 4000)
        late = rng.random() < 0.2
        clicks.append(
            (f"p{rng.randint(1, 5)}", t - (rng.randint(0, disorder_s * 1000) if late else 0), n)
        )
    return clicks


def _run(driver: TestDriver, clicks: list[tuple[str, int, int]]) -> None:
    for page, t, n in clicks:
        driver.send("clicks", {"page": page, "n": n}, key=page, timestamp=t)
    driver.advance(3600)  # every window closes


def _results(driver: TestDriver) -> dict[tuple[str, int, int], Any]:
    found: dict[tuple[str, int, int], Any] = {}
    for r in driver.records("counts"):
        window = (r.value["key"], r.value["start"], r.value["end"])
        assert window not in found, f"{window} emitted twice"
        found[window] = r.value["value"]
    return found


def _late(driver: TestDriver) -> set[int]:
    """The ``n`` of every record in the late topic."""
    return {orjson.loads(r.value)["n"] for r in driver.records("w-per-page-late")}


def _oracle_fixed(
    clicks: list[tuple[str, int, int]], size: int, hop: int, grace: int
) -> dict[tuple[str, int, int], int]:
    """Each record in every window that covers it and was still open when it came: a
    window closes when its partition's stream time reaches its end plus the grace."""
    found: dict[tuple[str, int, int], int] = defaultdict(int)
    stream: dict[int, int] = defaultdict(lambda: -1)
    for page, t, n in clicks:
        partition = key_partition(page.encode(), 3)
        start = t - t % hop
        while start > t - size:
            if stream[partition] < start + size + grace:
                found[(page, start, start + size)] += n
            start -= hop
        stream[partition] = max(stream[partition], t)
    return dict(found)


@pytest.mark.parametrize(("size", "hop"), [(MINUTE, MINUTE), (MINUTE, 20_000)])
def test_tumbling_and_hopping_results_equal_a_batch_fold_and_late_records_are_kept(
    size: int, hop: int
) -> None:
    clicks = _clicks(seed=size + hop, disorder_s=(size - hop) // 1000 + 45)
    driver = TestDriver(_app(size=size / 1000, hop=hop / 1000, grace="10s"))
    _run(driver, clicks)
    late = _late(driver)
    assert late, "the input has records later than the grace"
    assert _results(driver) == _oracle_fixed(clicks, size, hop, 10_000)
    # A late record came after the stream time passed its windows' ends plus the grace.
    for _page, t, n in clicks:
        if n in late:
            assert t < max(t2 for _, t2, _ in clicks[: n + 1]) - 10_000


def test_a_late_record_carries_why_and_its_bytes_unchanged() -> None:
    driver = TestDriver(_app(size="1m", grace="10s"))
    driver.send("clicks", {"page": "a", "n": 1}, key="a", timestamp=T0 + 5 * MINUTE)
    driver.send("clicks", {"page": "a", "n": 2}, key="a", timestamp=T0 + 10_000)
    (late,) = driver.records("w-per-page-late")
    assert late.key == b"a"
    assert late.value == b'{"page":"a","n":2}'
    assert late.headers["__streamkit.late.window.end"] == str(T0 + MINUTE).encode()
    assert late.headers["__streamkit.late.watermark"] == str(T0 + 5 * MINUTE - 10_000).encode()
    assert driver.engine.counters.late == 1


def _late_by_rule(clicks: list[tuple[str, int, int]], closes_at: Any) -> set[int]:
    """The records that come when their partition's stream time has reached
    ``closes_at(t)``: too late for any window they could start or join."""
    late, stream = set(), defaultdict(lambda: -1)
    for page, t, n in clicks:
        partition = key_partition(page.encode(), 3)
        if stream[partition] >= closes_at(t):
            late.add(n)
        stream[partition] = max(stream[partition], t)
    return late


def _session_oracle(
    clicks: list[tuple[str, int, int]], gap: int, grace: int
) -> tuple[set[int], dict[tuple[str, int, int], int]]:
    """The late records and the sessions (key, start, end) -> sum of ``n``, by the session
    rule: a record joins every open session of its key within ``gap`` of it (a session is
    open until its partition's stream time passes its last record + gap + grace); one that
    joins none starts a session, unless the stream time has already passed its own time
    + gap + grace (that session would be closed): then it is late."""
    late: set[int] = set()
    closed: dict[tuple[str, int, int], int] = {}
    stream: dict[int, int] = defaultdict(lambda: -1)
    sessions: dict[str, list[tuple[int, int, int]]] = defaultdict(list)  # open: start, end, sum
    for page, t, n in clicks:
        partition = key_partition(page.encode(), 3)
        now = stream[partition]
        for held in list(sessions):  # close what the stream time has passed
            if key_partition(held.encode(), 3) != partition:
                continue
            for s in [s for s in sessions[held] if now > s[1] + gap + grace]:
                closed[(held, s[0], s[1])] = s[2]
                sessions[held].remove(s)
        joined = [s for s in sessions[page] if s[0] - gap <= t <= s[1] + gap]
        if not joined and now > t + gap + grace:
            late.add(n)
            continue
        merged = (
            min([t, *(s[0] for s in joined)]),
            max([t, *(s[1] for s in joined)]),
            n + sum(s[2] for s in joined),
        )
        sessions[page] = [s for s in sessions[page] if s not in joined] + [merged]
        stream[partition] = max(now, t)
    for page, held in sessions.items():
        closed.update({(page, s[0], s[1]): s[2] for s in held})
    return late, closed


def test_session_windows_merge_bridged_sessions_and_equal_a_batch_sessionization() -> None:
    clicks = _clicks(seed=3, count=300, disorder_s=60)
    driver = TestDriver(_app(gap="5s", grace="30s", merge=lambda a, b: a + b))
    _run(driver, clicks)
    late, sessions = _session_oracle(clicks, 5000, 30_000)
    assert late
    assert _late(driver) == late
    assert _results(driver) == sessions


def test_a_record_inside_an_open_session_is_folded_not_late() -> None:
    # b@60 is older than stream time (100) - gap - grace, but its session b [55, 71]
    # stays open until the stream time passes 71 + 20 + 10. Keys b and f share a partition.
    driver = TestDriver(_app(gap="20s", grace="10s", merge=lambda a, b: a + b))
    for page, t in [("b", 55), ("b", 71), ("f", 100), ("b", 60), ("f", 1000)]:
        driver.send("clicks", {"page": page, "n": 1}, key=page, timestamp=T0 + t * 1000)
    assert driver.records("w-per-page-late") == []
    assert _results(driver) == {
        ("b", T0 + 55_000, T0 + 71_000): 3,
        ("f", T0 + 100_000, T0 + 100_000): 1,
    }


def test_sessions_match_the_session_rule_over_many_disordered_inputs() -> None:
    for seed in range(20):
        clicks = _clicks(seed=seed, count=200, disorder_s=40)
        driver = TestDriver(_app(gap="4s", grace="6s", merge=lambda a, b: a + b))
        _run(driver, clicks)
        late, sessions = _session_oracle(clicks, 4000, 6000)
        assert _late(driver) == late, f"seed {seed}"
        assert _results(driver) == sessions, f"seed {seed}"


def test_a_record_bridging_two_sessions_merges_them() -> None:
    driver = TestDriver(_app(gap="15s", grace="30s", merge=lambda a, b: a + b, emit="update"))
    for t, n in [(0, 1), (25_000, 2), (12_000, 4)]:  # 12 s bridges [0, 0] and [25, 25]
        driver.send("clicks", {"page": "a", "n": n}, key="a", timestamp=T0 + t)
    assert driver.windows("per-page", "a") == [
        {"start": T0, "end": T0 + 25_000, "value": 7, "closed": False}
    ]


def test_a_session_fold_without_merge_is_refused_at_declaration() -> None:
    with pytest.raises(ConfigError, match="needs merge="):
        _app(gap="5s")


def test_sliding_windows_end_at_each_record_and_equal_a_batch_computation() -> None:
    clicks = _clicks(seed=5, count=200)
    driver = TestDriver(_app(size="30s", sliding=True, grace="10s"))
    _run(driver, clicks)
    late = _late_by_rule(clicks, lambda t: t + 10_000 + 1)
    assert late
    assert _late(driver) == late
    expected = {}
    for page, t, n in clicks:
        if n in late:
            continue
        inside = [
            m for p2, t2, m in clicks if p2 == page and m not in late and t - 30_000 <= t2 <= t
        ]
        expected[(page, t - 30_000, t)] = sum(inside)
    assert _results(driver) == expected


def test_update_emits_a_result_per_change_and_nothing_at_the_close() -> None:
    driver = TestDriver(_app(size="1m", emit="update"))
    for n in (1, 2, 3):
        driver.send("clicks", {"page": "a", "n": n}, key="a", timestamp=T0 + n)
    driver.advance(600)
    assert [r.value["value"] for r in driver.records("counts")] == [1, 3, 6]
    assert {r.headers["__streamkit.window.final"] for r in driver.records("counts")} == {b"false"}


def test_a_window_closes_on_wall_clock_idleness_without_a_next_record() -> None:
    driver = TestDriver(_app(size="1h", close_idle="30s"))
    driver.send("clicks", {"page": "a", "n": 5}, key="a", timestamp=T0)
    driver.advance(29, clock="wall")
    assert driver.records("counts") == []
    driver.advance(2, clock="wall")  # 31 s without a record: closed, the hour not over
    (result,) = driver.records("counts")
    assert result.value == {"key": "a", "start": T0, "end": T0 + 3_600_000, "value": 5}
    driver.send("clicks", {"page": "a", "n": 1}, key="a", timestamp=T0 + 1000)
    assert len(driver.records("w-per-page-late")) == 1  # its window was closed
    assert driver.windows("per-page", "a")[0]["closed"] is True


def test_reduce_and_collect_forms_and_a_state_too_large_is_dead_lettered() -> None:
    reduced = TestDriver(_app(size="1m", form="reduce"))
    collected = TestDriver(_app(size="1m", form="collect", max_bytes=200))
    for n in range(40):
        for driver in (reduced, collected):
            driver.send("clicks", {"page": "a", "n": n}, key="a", timestamp=T0 + n)
    reduced.advance(120)
    collected.advance(120)
    assert reduced.values("counts")[0]["value"] == {"n": sum(range(40))}
    kept = collected.values("counts")[0]["value"]
    assert kept == list(range(len(kept)))  # the records that fit, in order
    letters = collected.dead_letters("clicks")
    assert len(kept) + len(letters) == 40
    assert {x.error_class for x in letters} == {"streamkit.errors.WindowStateTooLargeError"}
    assert "over max_bytes=200" in letters[0].error["exception.message"]
    assert {x.error["attempts"] for x in letters} == {"1"}  # never retried


def test_event_time_from_a_field_and_mis_keyed_records_are_dead_lettered() -> None:
    driver = TestDriver(_app(size="1m", timestamp="at"))
    driver.send("clicks", {"page": "a", "n": 1, "at": T0 + 5}, key="a", timestamp=1)
    driver.send("clicks", {"page": "a", "n": 2, "at": T0 + 7}, key="b", timestamp=1)
    assert driver.windows("per-page", "a") == [
        {"start": T0, "end": T0 + MINUTE, "value": 1, "closed": False}
    ]
    (letter,) = driver.dead_letters("clicks")
    assert letter.error_class == "streamkit.errors.KeyMismatchError"


def test_a_redelivered_record_is_not_folded_twice_into_its_windows() -> None:
    driver = TestDriver(_app(size="1m", hop="30s"))
    first = driver.send("clicks", {"page": "a", "n": 4}, key="a", timestamp=T0 + 40_000)
    driver.send("clicks", {"page": "a", "n": 1}, key="a", timestamp=T0 + 41_000)
    driver.redeliver("clicks", first.partition, first.offset)
    assert [w["value"] for w in driver.windows("per-page", "a")] == [5, 5]


def test_a_window_close_reaches_the_changelog_only_after_its_result_is_acknowledged() -> None:
    # A close durable before its result would, after a crash, leave a closed window
    # whose result was never written: its records redelivered would go to the late topic.
    driver = TestDriver(_app(size="1m"))
    driver.send("clicks", {"page": "a", "n": 1}, key="a", timestamp=T0)
    state = driver.engine.tasks[("clicks", key_partition(b"a", 3))].state
    assert state is not None
    state.changes()
    driver.engine.pipeline.time.advance("clicks", state, T0 + 2 * MINUTE)
    written: list[tuple[str, bytes | None, bytes | None]] = []

    def sink(topic: str, key: Any, value: Any, headers: Any, ts: int, partition: int = -1) -> None:
        written.append((topic, key, value))

    outcome = driver.engine.pipeline.fire("clicks", state, sink, idle=False)
    assert [t for t, _, _ in written] == ["counts"]  # the result, and no changelog record
    for acked in outcome.acked:  # the result is acknowledged (no record's known yet)
        acked(-1)
    changelog = {(topic, key, value) for topic, key, value in state.changes()}
    assert ("w-per-page-changelog", f"a\x1f{T0}".encode(), None) in changelog


@pytest.mark.parametrize(
    "window",
    [
        {"size": "1m"},
        {"size": "1m", "hop": "30s"},
        {"size": "10s", "sliding": True},
        {"gap": "20s", "form": "collect"},
    ],
    ids=["tumbling", "hopping", "sliding", "session"],
)
def test_records_of_a_window_closed_before_a_crash_are_redeliveries_not_late(
    window: dict[str, Any],
) -> None:
    # The close (and the stream time past it) reached the changelog, the input's commit
    # did not: the restarted worker gets the window's records again. They were folded,
    # and the result written, before: not late now. A record late the first time is late
    # again (an identical copy in the late topic, at least once).
    driver = TestDriver(_app(**window))
    a, b = _same_partition(2)
    first = driver.send("clicks", {"page": a, "n": 1}, key=a, timestamp=T0)
    driver.send("clicks", {"page": a, "n": 2}, key=a, timestamp=T0 + 5_000)
    driver.send("clicks", {"page": b, "n": 3}, key=b, timestamp=T0 + 3 * MINUTE)  # closes
    assert [r for r in driver.values("counts") if r["key"] == a]
    results = driver.values("counts")
    driver.send("clicks", {"page": a, "n": 4}, key=a, timestamp=T0 + 6_000)  # late
    assert _late(driver) == {4}
    driver.redeliver("clicks", first.partition, first.offset)
    assert driver.values("counts") == results
    assert [orjson.loads(r.value)["n"] for r in driver.records("w-per-page-late")] == [4, 4]


def _same_partition(count: int) -> list[str]:
    """``count`` page names whose records share a partition of ``clicks``."""
    pages = (f"p{n}" for n in range(1000))
    return [p for p in pages if key_partition(p.encode(), 3) == 0][:count]


def test_closed_windows_reach_the_changelog_in_the_driver_too() -> None:
    driver = TestDriver(_app(size="1m"))
    driver.send("clicks", {"page": "a", "n": 1}, key="a", timestamp=T0)
    driver.advance(120)
    assert len(driver.records("counts")) == 1
    tombstones = [r for r in driver.records("w-per-page-changelog") if r.value is None]
    assert [r.key for r in tombstones] == [f"a\x1f{T0}".encode()]
