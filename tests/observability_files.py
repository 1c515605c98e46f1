"""The Grafana dashboard and Prometheus alert rules of ``deploy/observability``: their
queries, and the streamkit metrics those read (for the tests that check them)."""

import re
from pathlib import Path
from typing import Any

import orjson
import yaml

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "deploy" / "observability" / "grafana-dashboard.json"
ALERTS = ROOT / "deploy" / "observability" / "prometheus-alerts.yml"
AUTOSCALER = frozenset(
    {
        "streamkit_autoscale_workers",
        "streamkit_autoscale_desired_workers",
        "streamkit_autoscale_lag",
        "streamkit_autoscale_stuck_partitions",
        "streamkit_autoscale_decisions_total",
    }
)
"""What the supervisor serves under ``--autoscale`` (the rest: every worker)."""


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads(DASHBOARD.read_bytes())
    return loaded


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def queries() -> list[str]:
    """Every PromQL expression: the dashboard's panels' and variables', the rules'."""
    found = [
        target["expr"] for panel in dashboard()["panels"] for target in panel.get("targets", [])
    ]
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            found.append(variable["definition"].removeprefix("label_values(").split(",")[0])
    found += [rule["expr"] for rule in alert_rules()]
    return found


def metrics_used() -> set[str]:
    """The streamkit series the queries read (histograms by their ``_bucket`` series)."""
    return {name for expr in queries() for name in re.findall(r"\bstreamkit_[a-z_]+\b", expr)}


def exposed(text: str) -> set[str]:
    """The series names a Prometheus exposition can have, from its ``# TYPE`` lines."""
    names: set[str] = set()
    for kind_line in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE):
        name, kind = kind_line
        names.add(name)
        if kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    return names
