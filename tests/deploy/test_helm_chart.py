"""The Helm chart of deploy/helm/streamkit, checked offline: `helm lint`, `helm template`
for several value sets, every rendered object against the Kubernetes API schemas
(kubernetes-validate) and the CRDs' own schemas (KEDA, Prometheus Operator), and the
promises the chart makes (probes, grace period, non-root, replicas capped at partitions,
credentials only from Secrets)."""

import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "streamkit"
KUBERNETES = "1.33.0"

VALUE_SETS: dict[str, list[str]] = {
    "defaults": [],
    "autoscaled-sasl-ssl": [
        "--set",
        "autoscaling.enabled=true",
        "--set",
        "autoscaling.minReplicaCount=0",
        "--set",
        "autoscaling.maxReplicaCount=4",
        "--set",
        "kafka.securityProtocol=SASL_SSL",
        "--set",
        "kafka.sasl.existingSecret=orders-kafka",
        "--set",
        "kafka.tls.caSecret=kafka-ca",
        "--set",
        "metrics.serviceMonitor.enabled=true",
    ],
    "plain-sasl-fixed": [
        "--set",
        "replicaCount=3",
        "--set",
        "kafka.securityProtocol=SASL_PLAINTEXT",
        "--set",
        "kafka.sasl.mechanism=PLAIN",
        "--set",
        "kafka.sasl.existingSecret=creds",
        "--set",
        "podDisruptionBudget.enabled=false",
        "--set",
        "metrics.podAnnotations=false",
        "--set",
        "app.module=processors.receipts",
        "--set",
        "app.group=receipts",
    ],
}


def render(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [helm, "template", "orders", str(CHART), "--kube-version", KUBERNETES, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def objects(helm: str, *args: str) -> dict[str, dict[str, Any]]:
    done = render(helm, *args)
    assert done.returncode == 0, done.stderr
    found = [doc for doc in yaml.safe_load_all(done.stdout) if doc]
    return {doc["kind"]: doc for doc in found}


@pytest.mark.parametrize("values", list(VALUE_SETS))
def test_the_chart_lints_clean(helm: str, values: str) -> None:
    done = subprocess.run(
        [helm, "lint", "--strict", "--kube-version", KUBERNETES, str(CHART), *VALUE_SETS[values]],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("values", list(VALUE_SETS))
def test_every_rendered_object_is_valid_against_its_schema(
    helm: str, crd_schemas: dict[tuple[str, str], dict[str, Any]], values: str
) -> None:
    rendered = objects(helm, *VALUE_SETS[values])
    assert {"Deployment", "Service"} <= set(rendered)
    for kind, obj in rendered.items():
        crd = crd_schemas.get((obj["apiVersion"], kind))
        if crd is not None:
            jsonschema.validate(obj, crd)
        else:
            kubernetes_validate.validate(obj, KUBERNETES, strict=True)


def test_workers_drain_longer_than_their_shutdown_timeout_unprivileged_and_probed(
    helm: str,
) -> None:
    deployment = objects(helm, "--set", "app.shutdownTimeout=45")["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (worker,) = pod["containers"]
    args = worker["args"]
    assert args[args.index("--shutdown-timeout") + 1] == "45"
    assert pod["terminationGracePeriodSeconds"] > 45
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert worker["securityContext"]["readOnlyRootFilesystem"] is True
    assert worker["securityContext"]["allowPrivilegeEscalation"] is False
    assert worker["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert worker["readinessProbe"]["httpGet"]["path"] == "/readyz"
    mounts = {m["mountPath"] for m in worker["volumeMounts"]}
    assert {"/var/lib/streamkit", "/tmp"} <= mounts  # noqa: S108 - the only writable places
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert args[args.index("--workers") + 1] == "1"  # one member per pod


def test_keda_scales_on_the_group_lag_capped_at_the_partitions_and_ignores_stuck_ones(
    helm: str,
) -> None:
    rendered = objects(helm, *VALUE_SETS["autoscaled-sasl-ssl"])
    assert "replicas" not in rendered["Deployment"]["spec"]  # KEDA owns the count
    scaled = rendered["ScaledObject"]
    assert scaled["spec"]["minReplicaCount"] == 0
    assert scaled["spec"]["maxReplicaCount"] == 4
    (trigger,) = scaled["spec"]["triggers"]
    meta = trigger["metadata"]
    assert trigger["type"] == "kafka"
    assert meta["consumerGroup"] == "orders"
    assert meta["allowIdleConsumers"] == "false"
    assert meta["offsetResetPolicy"] == "earliest"
    assert meta["excludePersistentLag"] == "true"
    assert meta["sasl"] == "scram_sha512"
    assert meta["tls"] == "enable"
    auth = rendered["TriggerAuthentication"]["spec"]["secretTargetRef"]
    assert {a["parameter"] for a in auth} == {"username", "password", "ca"}
    assert (
        trigger["authenticationRef"]["name"]
        == rendered["TriggerAuthentication"]["metadata"]["name"]
    )


def test_sasl_credentials_come_only_from_the_secret(helm: str) -> None:
    rendered = objects(helm, *VALUE_SETS["plain-sasl-fixed"])
    (worker,) = rendered["Deployment"]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in worker["env"]}
    assert env["STREAMKIT_KAFKA_SASL_USERNAME"]["valueFrom"]["secretKeyRef"]["name"] == "creds"
    assert env["STREAMKIT_KAFKA_SASL_PASSWORD_FILE"]["value"] == "/etc/streamkit/kafka/password"
    assert "STREAMKIT_KAFKA_SASL_PASSWORD" not in env
    assert env["STREAMKIT_KAFKA_SASL_MECHANISM"]["value"] == "PLAIN"
    assert "PodDisruptionBudget" not in rendered


@pytest.mark.parametrize(
    ("values", "refusal"),
    [
        (
            ["--set", "autoscaling.enabled=true", "--set", "autoscaling.maxReplicaCount=9"],
            "autoscaling.maxReplicaCount 9 exceeds the 4 partitions of orders.placed",
        ),
        (
            ["--set", "kafka.securityProtocol=SASL_SSL"],
            "kafka.sasl.existingSecret: a SASL protocol needs the Secret",
        ),
        (["--set", "kafka.securityProtocol=TLS"], 'kafka.securityProtocol "TLS" is not one of'),
        (
            [
                "--set",
                "kafka.securityProtocol=SASL_SSL",
                "--set",
                "kafka.sasl.existingSecret=c",
                "--set",
                "kafka.sasl.mechanism=GSSAPI",
            ],
            'kafka.sasl.mechanism "GSSAPI" is not one of',
        ),
    ],
)
def test_values_that_cannot_work_are_refused_with_the_reason(
    helm: str, values: list[str], refusal: str
) -> None:
    done = render(helm, *values)
    assert done.returncode != 0
    assert refusal in done.stderr
