"""The short version of every chaos scenario (tests/e2e/chaos): faults injected into real
workers on a real broker, every event accounted for by the oracle."""

import pytest

from tests.e2e.chaos.scenarios import SCENARIOS, SHORT, Scenario, run_scenario

pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_every_event_is_accounted_for(scenario: Scenario, kafka_bootstrap: str) -> None:
    row = run_scenario(scenario, kafka_bootstrap, SHORT)
    assert row.inputs == SHORT.records
    assert row.problems == [], f"{scenario.name}: {row.problems}"
    assert row.lost == 0
    assert row.commit_samples > 0, "the committed-offset check saw no commits"
    if scenario.name != "poison-mix":
        assert row.faults >= 1, "the fault was never injected"
    if scenario.zero_duplicates or scenario.eos:
        assert row.duplicates == 0
