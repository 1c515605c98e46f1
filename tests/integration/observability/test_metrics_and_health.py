"""Metrics, health, JSON logs, status and secrets, with real workers on a real broker."""

import re
import subprocess
import urllib.error
import urllib.request

import orjson

from streamkit.ops.local_broker import free_port
from tests.integration.runtime.conftest import EchoSetup, wait_for
from tests.observability_files import AUTOSCALER, exposed, metrics_used


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return 0, ""


def _sample(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_move_as_records_flow_and_health_endpoints_answer(echo: EchoSetup) -> None:
    port = free_port()
    run = echo.start("--http-port", str(port), "--workers", "1")
    wait_for(lambda: _get(port, "/healthz")[0] == 200, 60, "/healthz")
    wait_for(lambda: _get(port, "/readyz")[0] == 200, 60, "/readyz after assignment")
    echo.produce(500)
    wait_for(
        lambda: _sample(_get(port, "/metrics")[1], "streamkit_records_produced_total") >= 500,
        60,
        "500 produced in the metrics",
    )

    def lag_is_zero() -> bool:
        text = _get(port, "/metrics")[1]
        return "streamkit_consumer_lag{" in text and _sample(text, "streamkit_consumer_lag") == 0

    wait_for(lag_is_zero, 60, "lag back to 0")
    text = _get(port, "/metrics")[1]
    assert _sample(text, "streamkit_records_consumed_total", topic=echo.input) == 500
    assert _sample(text, "streamkit_records_produced_total", topic=echo.output) == 500
    assert (
        _sample(text, "streamkit_records_processed_total", processor="echo", outcome="emitted")
        == 500
    )
    assert _sample(text, "streamkit_process_duration_seconds_count", processor="echo") == 500
    assert _sample(text, "streamkit_assigned_partitions") == echo.partitions
    assert _sample(text, "streamkit_rebalances_total", kind="assigned") == echo.partitions
    assert re.search(r'streamkit_consumer_lag\{.*partition="5".*\} 0\.0', text)
    # Every metric the Grafana dashboard and the alert rules read of a worker, it serves.
    missing = metrics_used() - AUTOSCALER - exposed(text)
    assert not missing, f"deploy/observability reads metrics no worker serves: {missing}"
    # status reads committed offsets, which follow the consumer's position by up to a
    # commit interval
    statuses: list[subprocess.CompletedProcess[str]] = []

    def committed_lag_is_zero() -> bool:
        statuses.append(echo.cli_status())
        assert statuses[-1].returncode == 0, statuses[-1].stderr
        return "lag 0" in statuses[-1].stdout

    wait_for(committed_lag_is_zero, 30, "status says lag 0")
    assert f"{echo.input}" in statuses[-1].stdout
    code, err = echo.stop(run)
    assert code == 0, err


def test_json_logs_name_the_record_and_secrets_never_appear(echo: EchoSetup) -> None:
    sentinels = {
        "STREAMKIT_KAFKA_SASL_PASSWORD": "sentinel-sasl-6f1d",
        "STREAMKIT_KAFKA_SSL_KEY_PASSWORD": "sentinel-sslkey-93ab",
        "STREAMKIT_SCHEMA_REGISTRY_URL": "http://alice:sentinel-registry-51c0@127.0.0.1:9",
    }
    echo.produce(50)
    run = echo.start(
        "--log-format",
        "json",
        "--log-level",
        "debug",
        ECHO_DLQ="1",
        ECHO_POISON_N="7",
        STREAMKIT_KAFKA_DEBUG="conf,generic",
        **sentinels,
    )
    created = subprocess.run(
        [*echo.command("topics", "create", "tests.integration.apps.echo")],
        env=echo.env(ECHO_DLQ="1", **sentinels),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert created.returncode == 0, created.stderr
    dlq = f"{echo.group}-{echo.input}-dlq"
    wait_for(lambda: len(echo.read(dlq, 1, timeout=2)) == 1, 90, "the poison dead-lettered")
    code, err = echo.stop(run)
    assert code == 0, err
    lines = [line for line in err.splitlines() if line.strip()]
    docs = [orjson.loads(line) for line in lines if line.startswith("{")]
    assert len(docs) == len(lines), [line for line in lines if not line.startswith("{")]
    dead = [d for d in docs if d["message"].startswith("dead-lettered")]
    assert dead, lines[-20:]
    assert {"topic", "partition", "offset", "processor"} <= set(dead[0])
    assert dead[0]["processor"] == "echo"
    assert any(d["logger"] == "streamkit.kafka" for d in docs)  # librdkafka's own debug lines
    failing = subprocess.run(
        [*echo.command("produce", "no-such-topic-zz")],
        input="{}\n",
        env=echo.env(**sentinels),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    dlq_headers = b"".join(v or b"" for msg in echo.read_raw(dlq) for _, v in (msg.headers() or []))
    everything = err + created.stdout + created.stderr + failing.stdout + failing.stderr
    for secret in ("sentinel-sasl-6f1d", "sentinel-sslkey-93ab", "sentinel-registry-51c0"):
        assert secret not in everything
        assert secret.encode() not in dlq_headers
