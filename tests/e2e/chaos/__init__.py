"""The reliability suite: faults injected into real workers on a real broker, and an
oracle that accounts for every event. `make chaos` runs long cycles; tests/e2e/test_chaos.py
runs a short version of each scenario in the test suite."""
