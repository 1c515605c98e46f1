"""Fields tagged PII on a real broker: unreadable in the topics' bytes (input, output and
dead letters), readable in the processor that holds the keyset and in a client that
holds it, ciphertext in a client that does not."""

import threading
import uuid
from pathlib import Path
from typing import Any

from streamkit import App
from streamkit.contracts.encryption import create_keyset
from streamkit.engines.kafka import KafkaWorker, WorkerOptions
from streamkit.ops.client import AppClient
from streamkit.settings import Settings
from streamkit.testing.plugin import TopicFactory
from tests.integration.helpers import read_all
from tests.integration.runtime.conftest import wait_for

SCHEMAS = Path(__file__).resolve().parents[1] / "apps" / "schemas"


def test_pii_fields_are_ciphertext_on_the_wire_and_plaintext_in_the_processor(
    kafka_bootstrap: str,
    kafka_config: dict[str, Any],
    topic_factory: TopicFactory,
    tmp_path: Path,
) -> None:
    keyset = tmp_path / "keyset.json"
    create_keyset(keyset)
    source, sink = topic_factory(2, prefix="patients"), topic_factory(2, prefix="wards")
    app = App(f"vault-{uuid.uuid4().hex[:6]}", schemas=SCHEMAS, dead_letters=True)
    app.topic(source, value="Patient", partitions=2)
    app.topic(sink, value="Patient", partitions=2)
    seen: list[str] = []

    @app.processor(input=source, output=sink)
    def admit(patient: dict[str, Any]) -> dict[str, Any]:
        if patient["ward"] == "poison":
            raise ValueError("not admitted")
        seen.append(patient["email"])
        return {**patient, "ward": patient["ward"].upper()}

    keyed = Settings(bootstrap_servers=kafka_bootstrap, keyset=str(keyset))
    plain = Settings(bootstrap_servers=kafka_bootstrap)
    AppClient(app, plain).create_topics()
    with AppClient(app, keyed) as client:
        for n in range(20):
            ward = "poison" if n == 7 else f"w{n % 3}"
            client.send(
                source, {"id": f"p{n}", "email": f"p{n}@clinic.example", "ward": ward}, key=f"p{n}"
            )
        assert client.flush() == 20
    worker = KafkaWorker(app, settings=keyed, options=WorkerOptions(commit_interval=0.2))
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: len(read_all(kafka_config, sink, stall=5)) >= 19, 60, "19 outputs")
        dlq = f"{app.name}-{source}-dlq"
        wait_for(lambda: len(read_all(kafka_config, dlq, stall=5)) >= 1, 60, "a dead letter")
    finally:
        worker.request_stop()
        thread.join(60)
    assert sorted(seen) == sorted(f"p{n}@clinic.example" for n in range(20) if n != 7)
    for topic in (source, sink, dlq):
        for msg in read_all(kafka_config, topic):
            assert b"clinic.example" not in (msg.value() or b""), topic
    with AppClient(app, keyed) as client:
        outputs = client.read(sink, stall=5)
    assert sorted(e.value["email"] for e in outputs) == sorted(seen)
    with AppClient(app, plain) as client:
        hidden = client.read(sink, stall=5)
    assert all(e.value["email"].startswith("enc1:") for e in hidden)
    assert {e.value["ward"] for e in hidden} == {"W0", "W1", "W2"}
