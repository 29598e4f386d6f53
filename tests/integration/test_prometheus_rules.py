"""deploy/prometheus/alerts.yaml with promtool: syntax, unit tests per alert, and the dashboard's PromQL."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any, Final

import yaml

from tests.promql_exprs import ALERTS, dashboard_exprs
from tests.tools import tool

ROOT: Final = Path(__file__).resolve().parents[2]
ALERT_TESTS: Final = ROOT / "deploy/prometheus/alerts.test.yaml"


def promtool() -> str:
    return tool("promtool", "deploy/tools/install-promtool.sh")


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=120)


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_promtool_check_rules_accepts_the_alerts() -> None:
    result = run_promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in result.stdout


def test_promtool_unit_tests_of_every_alert_pass() -> None:
    result = run_promtool("test", "rules", str(ALERT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_unit_tests_cover_every_alert_firing_and_not_firing() -> None:
    cases = [
        case
        for group in yaml.safe_load(ALERT_TESTS.read_text())["tests"]
        for case in group["alert_rule_test"]
    ]
    for rule in _rules():
        outcomes = {bool(case["exp_alerts"]) for case in cases if case["alertname"] == rule["alert"]}
        assert outcomes == {True, False}, f"{rule['alert']}: tested firing/not firing = {outcomes}"


def test_every_alert_has_a_severity_summary_description_and_runbook() -> None:
    for rule in _rules():
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert {"summary", "description", "runbook"} <= set(rule["annotations"]), rule["alert"]


def test_required_alerts_exist() -> None:
    assert {rule["alert"] for rule in _rules()} >= {
        "IdaasBridgeWebhookAutoDisableRisk",
        "IdaasBridgeWebhookAutoDisableImminent",
        "IdaasBridgeKafkaPublishFailing",
        "IdaasBridgeSpoolFilling",
        "IdaasBridgeSpoolAlmostFull",
        "IdaasBridgeSpoolRecordsOld",
        "IdaasBridgeDeadLetters",
        "IdaasBridgeAuthFailuresSpiking",
        "IdaasBridgeDown",
        "IdaasBridgeAbsent",
        "IdaasBridgeNoRecentDeliveries",
    }


def test_every_dashboard_expression_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses each dashboard query (variables substituted) as a recording rule."""
    exprs = dashboard_exprs()
    rules = [{"record": f"dashboard:query_{index}", "expr": expr.expr} for index, expr in enumerate(exprs)]
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run_promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout


def test_compose_prometheus_config_is_valid() -> None:
    result = run_promtool("check", "config", str(ROOT / "deploy/prometheus/prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
