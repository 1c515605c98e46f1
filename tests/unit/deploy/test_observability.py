"""The Grafana dashboard and the Prometheus alert rules of ``deploy/observability``,
checked offline: the dashboard is a Grafana dashboard (panels placed on the grid, each
query on the ``$datasource`` variable), every PromQL expression parses, every rule says
how severe it is and what to do. That each metric they read exists is checked against a
live worker (tests/integration/observability) and supervisor (tests/integration/runtime/
test_autoscale.py)."""

import re

import promql_parser
import pytest

from tests.observability_files import alert_rules, dashboard, metrics_used, queries


def test_the_dashboard_is_a_grafana_dashboard_of_placed_panels_on_the_datasource() -> None:
    board = dashboard()
    assert board["uid"] == "streamkit-overview"
    assert board["schemaVersion"] >= 36
    names = [v["name"] for v in board["templating"]["list"]]
    assert names == ["datasource", "app"]
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["type"] == "timeseries"
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        refs = [t["refId"] for t in panel["targets"]]
        assert refs, panel["title"]
        assert len(refs) == len(set(refs)), panel["title"]
        assert all('app=~"$app"' in t["expr"] for t in panel["targets"]), panel["title"]


def test_every_query_parses() -> None:
    found = queries()
    assert len(found) > 30
    for expr in found:
        promql_parser.parse(expr)  # raises ValueError, naming what is wrong


def test_a_broken_query_would_not_parse() -> None:
    with pytest.raises(ValueError, match="parenthesis"):
        promql_parser.parse("sum by (app (rate(streamkit_dead_letters_total[5m]))")


def test_every_rule_says_its_severity_what_happened_and_what_to_do() -> None:
    rules = alert_rules()
    assert {r["alert"] for r in rules} >= {
        "StreamkitLagGrowing",
        "StreamkitDeadLetterSpike",
        "StreamkitStuckPartition",
        "StreamkitCrashLoop",
    }
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"], rule["alert"]
        assert rule["annotations"]["description"], rule["alert"]
        if "for" in rule:
            assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]


def test_the_panels_cover_what_an_operator_watches() -> None:
    used = metrics_used()
    for metric in (
        "streamkit_consumer_lag",
        "streamkit_records_consumed_total",
        "streamkit_process_duration_seconds_bucket",
        "streamkit_dead_letters_total",
        "streamkit_worker_restarts",
        "streamkit_rebalances_total",
        "streamkit_restored_records_total",
        "streamkit_autoscale_workers",
        "streamkit_workflow_steps_total",
    ):
        assert metric in used, metric
