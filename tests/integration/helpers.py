"""What the integration fixtures share: stopping the processes they started, and reading
a group's committed offsets."""

import signal
import subprocess
from typing import Any

from confluent_kafka import Consumer, TopicPartition


def stop(process: subprocess.Popen[bytes], timeout: float = 60) -> tuple[int, str]:
    """SIGTERM ``process`` and wait for it: its exit code and what it wrote to stderr."""
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=timeout)
    return process.returncode, err.decode(errors="replace")


def stop_all(processes: list[subprocess.Popen[bytes]], timeout: float = 45) -> None:
    """Stop every process still running: SIGTERM, then SIGKILL past ``timeout`` (teardown,
    also after a failed test)."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def committed_offsets(
    config: dict[str, Any], group: str, topic: str, partitions: int
) -> dict[int, int]:
    """``group``'s committed offset of each partition of ``topic`` (negative: none)."""
    consumer = Consumer({**config, "group.id": group})
    try:
        parts = consumer.committed(
            [TopicPartition(topic, p) for p in range(partitions)], timeout=10
        )
    finally:
        consumer.close()
    return {tp.partition: tp.offset for tp in parts}
