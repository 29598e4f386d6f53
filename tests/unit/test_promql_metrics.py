"""The dashboard and the alert rules only query metrics the bridge really exports."""

from __future__ import annotations

import json
from typing import Any, Final

import pytest
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

from bridge import metrics
from tests.promql_exprs import (
    DASHBOARD,
    aggregations_dropping,
    all_exprs,
    dashboard_exprs,
    metric_names,
    substitute,
)

#: Sample names prometheus_client writes for each metric type, from the family name.
SAMPLE_SUFFIXES: Final = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gauge": ("",),
}
#: Prometheus adds `up` to every scrape; process_* and python_* come from prometheus_client's default
#: collectors, which the bridge's /metrics serves along with its own.
SCRAPE_METRICS: Final = frozenset({"up"})


def _families() -> dict[str, str]:
    """Family name -> type for every metric defined in bridge/metrics.py."""
    return {
        family.name: family.type
        for value in vars(metrics).values()
        if isinstance(value, MetricWrapperBase)
        for family in value.describe()
    }


def bridge_sample_names() -> set[str]:
    return {name + suffix for name, kind in _families().items() for suffix in SAMPLE_SUFFIXES[kind]}


def standard_sample_names() -> set[str]:
    return {
        sample.name
        for family in REGISTRY.collect()
        if family.name.startswith(("process_", "python_"))
        for sample in family.samples
    }


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def test_every_metric_queried_by_the_dashboard_and_alerts_is_exported() -> None:
    known = bridge_sample_names() | standard_sample_names() | SCRAPE_METRICS
    unknown = {
        f"{expr.source}: {name}"
        for expr in all_exprs()
        for name in metric_names(expr.expr)
        if name not in known
    }
    assert not unknown, f"not exported by bridge/metrics.py or a standard collector: {sorted(unknown)}"


def test_every_bridge_metric_has_a_dashboard_panel() -> None:
    used = set().union(*(metric_names(expr.expr) for expr in dashboard_exprs()))
    missing = {
        name
        for name, kind in _families().items()
        if not any(name + suffix in used for suffix in SAMPLE_SUFFIXES[kind])
    }
    assert not missing, f"bridge metrics no dashboard panel shows: {sorted(missing)}"


def test_dashboard_expressions_have_every_template_variable_substituted() -> None:
    exprs = dashboard_exprs()
    assert len(exprs) > 30
    leftovers = [expr for expr in exprs if "$" in expr.expr or "[[" in expr.expr]
    assert not leftovers
    assert any('job=~".*"' in expr.expr and "[1m]" in expr.expr for expr in exprs)
    assert all('namespace=~".*"' in expr.expr for expr in exprs if expr.source.startswith("dashboard panel"))


def test_every_aggregation_keeps_the_release_labels() -> None:
    """Two releases (namespace, job) scraped by one Prometheus are never summed or compared as one."""
    dropping = {
        expr.source: found
        for expr in all_exprs()
        if (found := aggregations_dropping(expr.expr, ("namespace", "job")))
    }
    assert not dropping


@pytest.mark.parametrize(
    ("expr", "dropping"),
    [
        ("sum by (namespace, job, webhook) (x)", []),
        ("max without (pod) (x) > 3", []),
        ("sum(x)", ["sum(x)"]),
        ('histogram_quantile(0.9, sum by (le) (rate(x{a="sum(y)"}[5m])))', ["sum by (le) (rate(x{"]),
        ("count without (job) (x)", ["count without (job) (x)"]),
    ],
)
def test_aggregations_dropping_finds_aggregations_that_lose_a_release_label(
    expr: str, dropping: list[str]
) -> None:
    assert [
        found[: len(want)]
        for found, want in zip(aggregations_dropping(expr, ("namespace", "job")), dropping, strict=True)
    ] == dropping


def test_dashboard_legends_name_pods_not_addresses() -> None:
    legends = [
        target["legendFormat"] for panel in _dashboard()["panels"] for target in panel.get("targets", [])
    ]
    assert not [legend for legend in legends if "instance" in legend]
    assert any("{{pod}}" in legend for legend in legends)


def test_dashboard_offers_datasource_namespace_job_pod_variables() -> None:
    variables = {variable["name"]: variable for variable in _dashboard()["templating"]["list"]}
    assert {"datasource", "namespace", "job", "pod"} <= set(variables)
    # One release at a time: single-value namespace and job; any pods of it.
    assert not variables["namespace"]["multi"] and not variables["job"]["multi"]
    assert variables["pod"]["includeAll"]
    assert "$namespace" in variables["job"]["query"]["query"]
    assert "$job" in variables["pod"]["query"]["query"]


def test_every_panel_queries_the_datasource_template_variable() -> None:
    dashboard = _dashboard()
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]


@pytest.mark.parametrize(
    ("metric", "threshold"),
    [
        ("idaas_bridge_request_duration_seconds_bucket", 3),  # IDaaS gives up after 3 s
        ("idaas_bridge_failure_streak", 100),  # IDaaS disables a webhook after 100 failures
        ("idaas_bridge_spool_oldest_record_age_seconds", 300),  # the IdaasBridgeSpoolRecordsOld alert
    ],
)
def test_limit_panels_draw_their_threshold_line(metric: str, threshold: int) -> None:
    panels = [
        panel
        for panel in _dashboard()["panels"]
        if panel["type"] == "timeseries"
        and all(metric_names(target["expr"]) == {metric} for target in panel.get("targets", []))
    ]
    assert panels
    for panel in panels:
        defaults = panel["fieldConfig"]["defaults"]
        assert defaults["custom"]["thresholdsStyle"]["mode"] == "line", panel["title"]
        assert threshold in [step["value"] for step in defaults["thresholds"]["steps"]], panel["title"]


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'histogram_quantile(0.99, sum by (le) (rate(a_bucket{job=~"x|y", le!="+Inf"}[5m])))',
            {"a_bucket"},
        ),
        ('sum by (webhook) (b) >= 20 or on (instance, webhook) c{s="{not_a_metric}"} offset 15m', {"b", "c"}),
        (
            "time() - max(d) > 6 * 3600 unless absent(up{job='j'}) and e:recorded_rate5m",
            {"d", "up", "e:recorded_rate5m"},
        ),
        ("count_values without (x) ('v', f) * on () group_left (y) g", {"f", "g"}),
        ("1e3 * h[1h:5m] + Inf", {"h"}),
    ],
)
def test_metric_names_finds_only_metric_names(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_substitute_replaces_every_variable_syntax_and_rejects_unknown_ones() -> None:
    values = {"job": ".*", "__rate_interval": "1m"}
    assert substitute('x{job=~"$job"}[$__rate_interval] ${job} ${job:regex} [[job]]', values) == (
        'x{job=~".*"}[1m] .* .* .*'
    )
    with pytest.raises(KeyError, match=r"\$missing"):
        substitute("x{a=~'$missing'}", values)


def test_dashboard_panels_have_unique_ids_and_do_not_overlap() -> None:
    panels = _dashboard()["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    taken: dict[tuple[int, int], str] = {}
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for row in range(grid["y"], grid["y"] + grid["h"]):
            for column in range(grid["x"], grid["x"] + grid["w"]):
                assert (column, row) not in taken, f"{panel['title']} overlaps {taken[(column, row)]}"
                taken[(column, row)] = panel["title"]
