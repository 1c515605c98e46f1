"""Example processor modules (an orders domain) used by the demo and the tests."""
