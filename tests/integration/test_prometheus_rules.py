"""deploy/prometheus/alerts.yaml with promtool: syntax, unit tests per alert, and the dashboard's PromQL."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any, Final

import yaml

from tests.promql_exprs import ALERTS, dashboard_exprs
from tests.tools import tool

ROOT: Final = Path(__file__).resolve().parents[2]
ALERT_TESTS: Final = ROOT / "deploy/prometheus/alerts.test.yaml"
RUNBOOKS: Final = ROOT / "docs/runbooks.md"


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


def test_every_alert_has_a_severity_summary_description_and_runbook_url() -> None:
    for rule in _rules():
        assert rule["labels"]["severity"] in ("info", "warning", "critical"), rule["alert"]
        assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}, rule["alert"]
        # A summary that changes with the value makes every evaluation a new notification text.
        assert "$value" not in rule["annotations"]["summary"], rule["alert"]


def _github_anchor(heading: str) -> str:
    """GitHub's id for a Markdown heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_runbook_url_points_at_a_section_of_docs_runbooks() -> None:
    anchors = {
        _github_anchor(line.lstrip("#"))
        for line in RUNBOOKS.read_text(encoding="utf-8").splitlines()
        if line.startswith("## ")
    }
    for rule in _rules():
        document, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert document.endswith("/docs/runbooks.md"), rule["alert"]
        assert anchor in anchors, f"{rule['alert']}: no section #{anchor} in docs/runbooks.md"


def test_unit_tests_have_a_two_namespace_case_for_every_alert() -> None:
    """Each alert is evaluated at least once over series of two namespaces (two releases)."""
    covered = set()
    for group in yaml.safe_load(ALERT_TESTS.read_text())["tests"]:
        namespaces = {
            match
            for series in group["input_series"]
            for match in re.findall(r'namespace="([^"]*)"', series["series"])
        }
        if len(namespaces) >= 2:
            covered |= {case["alertname"] for case in group["alert_rule_test"]}
    assert {rule["alert"] for rule in _rules()} <= covered


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
