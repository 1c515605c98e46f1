"""Testing streamkit apps: real-broker pytest fixtures (and, with the runtime, TestDriver)."""

from streamkit.testing.brokers import TestBroker, docker_engine_answers, start_test_broker

__all__ = ["TestBroker", "docker_engine_answers", "start_test_broker"]
