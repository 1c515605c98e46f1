"""Workers of one consumer group on a real broker: every record accounted for."""

import threading
import time
from collections import Counter
from typing import Any

from confluent_kafka.admin import AdminClient

from tests.integration.runtime.conftest import EchoSetup, wait_for


def _members(config: dict[str, Any], group: str) -> dict[str, list[int]]:
    admin = AdminClient(config)
    (future,) = admin.describe_consumer_groups([group], request_timeout=10).values()
    description = future.result(timeout=15)
    return {
        m.member_id: sorted(tp.partition for tp in m.assignment.topic_partitions)
        for m in description.members
    }


def test_three_workers_split_the_partitions_and_produce_one_output_per_input(
    echo: EchoSetup,
) -> None:
    run = echo.start("--workers", "3", "--batch-size", "200")
    wait_for(
        lambda: sorted(map(len, _members(echo.config, echo.group).values())) == [2, 2, 2],
        60,
        "3 members with 2 of the 6 partitions each",
    )
    echo.produce(3000)
    inputs = echo.input_coordinates()
    assert len(inputs) == 3000
    outputs = echo.read(echo.output, 3000)
    by_source = Counter((o["p"], o["o"]) for o in outputs)
    assert set(by_source) == inputs  # every input has an output...
    assert max(by_source.values()) == 1  # ...exactly one in a clean run
    assert len({o["pid"] for o in outputs}) == 3  # all three workers took part
    code, err = echo.stop(run)
    assert code == 0, err
    ends = {p: high for p, (_, high) in echo.watermarks(echo.input).items()}
    assert echo.committed() == ends


def test_worker_added_and_removed_mid_stream_loses_nothing(echo: EchoSetup) -> None:
    total = 6000
    first = echo.start("--batch-size", "100", ECHO_DELAY_MS="0.5")
    producer = threading.Thread(target=lambda: [echo.produce(500, s) for s in range(0, total, 500)])
    producer.start()
    wait_for(lambda: len(echo.read(echo.output, 500, timeout=2)) >= 500, 60, "first outputs")
    second = echo.start("--batch-size", "100", ECHO_DELAY_MS="0.5")
    wait_for(lambda: len(_members(echo.config, echo.group)) == 2, 60, "the second member")
    code, err = echo.stop(first)  # the original member leaves mid-stream
    assert code == 0, err
    producer.join(timeout=120)
    inputs = echo.input_coordinates()
    assert len(inputs) == total
    outputs = echo.read_covering(echo.output, inputs, timeout=90)
    seen = {(o["p"], o["o"]) for o in outputs}
    missing = inputs - seen
    assert not missing, (
        f"{len(missing)} inputs have no output (first {sorted(missing)[:5]}), of "
        f"{len(outputs)} outputs read; committed {echo.committed()}, ends {echo.ends()}"
    )
    code, err = echo.stop(second)
    assert code == 0, err
    ends = {p: high for p, (_, high) in echo.watermarks(echo.input).items()}
    assert echo.committed() == ends


def test_sigterm_during_load_commits_everything_processed_and_nothing_beyond(
    echo: EchoSetup,
) -> None:
    echo.produce(5000)
    run = echo.start("--batch-size", "100", ECHO_DELAY_MS="2")
    wait_for(lambda: len(echo.read(echo.output, 300, timeout=2)) >= 300, 60, "some outputs")
    began = time.monotonic()
    code, err = echo.stop(run)
    assert code == 0, err
    assert time.monotonic() - began < 30
    outputs = echo.read(echo.output, 5000, timeout=5)
    assert 300 <= len(outputs) < 5000  # it really stopped mid-load
    processed: dict[int, int] = {}
    for o in outputs:
        processed[o["p"]] = max(processed.get(o["p"], -1), o["o"])
    committed = echo.committed()
    for partition in range(echo.partitions):
        expected = processed[partition] + 1 if partition in processed else -1001  # OFFSET_INVALID
        assert committed[partition] == expected, (partition, committed, processed)
    # and the next run resumes exactly there: no record lost, none processed twice
    rerun = echo.start("--batch-size", "500")
    outputs = echo.read(echo.output, 5000, timeout=90)
    code, err = echo.stop(rerun)
    assert code == 0, err
    by_source = Counter((o["p"], o["o"]) for o in outputs)
    assert len(by_source) == 5000
    assert max(by_source.values()) == 1
