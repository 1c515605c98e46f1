"""Restart backoff doubles per crash within the window and starts over after a good run
(regression: found by the chaos suite, where backoff only ever grew, so each crash of a
long-lived worker waited longer than the last)."""

from streamkit.host.supervisor import Supervisor, SupervisorOptions, _Slot


def test_backoff_doubles_within_the_window_and_resets_after_it() -> None:
    supervisor = Supervisor(
        "app", SupervisorOptions(max_restarts=10, restart_window=60, backoff_initial=1)
    )
    slot = _Slot(0)
    waits = []
    for now in (0.0, 1.0, 2.0, 3.0, 200.0):
        assert supervisor._crashed(slot, -9, now) is None
        waits.append(slot.backoff)
    assert waits == [1, 2, 4, 8, 1]


def test_a_crash_loop_gives_up() -> None:
    supervisor = Supervisor("app", SupervisorOptions(max_restarts=3, restart_window=60))
    slot = _Slot(0)
    assert supervisor._crashed(slot, 1, 0.0) is None
    assert supervisor._crashed(slot, 1, 1.0) is None
    assert supervisor._crashed(slot, 1, 2.0) == 1
