"""Testing streamkit apps: TestDriver (no Kafka) and real-broker pytest fixtures."""

from streamkit.testing.brokers import TestBroker, docker_engine_answers, start_test_broker
from streamkit.testing.driver import DriverRecord, TestDriver

__all__ = ["DriverRecord", "TestBroker", "TestDriver", "docker_engine_answers", "start_test_broker"]
