"""Every PromQL expression the project ships: Grafana dashboard queries and Prometheus alert rules.

Dashboard expressions come back with every query variable matching everything (`$job` -> `.*`, as Grafana
does for "All"; the single-value namespace and job variables too, so one query covers every scraped release)
and `$__rate_interval` -> `1m`, so they can be sent to a real Prometheus.
`metric_names` pulls the metric names out of an expression, for checking them against bridge/metrics.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

ROOT: Final = Path(__file__).resolve().parents[1]
DASHBOARD: Final = ROOT / "deploy/grafana/idaas-siem-bridge.json"
ALERTS: Final = ROOT / "deploy/prometheus/alerts.yaml"

#: Grafana's built-in interval variables, as Grafana would resolve them for a 15 s scrape interval.
BUILTIN_VARIABLES: Final = {"__rate_interval": "1m", "__interval": "1m", "__range": "1h"}

_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?P<selector>.+?)\s*,\s*\w+\s*\)\s*$", re.DOTALL)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_BRACES = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.:])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()")
#: Words that look like identifiers but are not metric names: aggregations (which may be followed by
#: `by (...)` rather than `(`), binary operators and modifiers, and number literals.
_NOT_METRICS: Final = frozenset(
    {
        "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
        "quantile", "limitk", "limit_ratio", "by", "without", "on", "ignoring", "group_left", "group_right",
        "bool", "and", "or", "unless", "offset", "atan2", "inf", "nan", "Inf", "NaN",
    }
)  # fmt: skip


@dataclass(frozen=True)
class PromQLExpr:
    """One expression and where it comes from: `dashboard panel 'Title' B`, `alert IdaasBridgeDown`, ..."""

    source: str
    expr: str


def _variable_values(dashboard: Mapping[str, Any]) -> dict[str, str]:
    values = dict(BUILTIN_VARIABLES)
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable["type"] == "datasource":
            continue
        values[variable["name"]] = variable.get("allValue") or ".*"
    return values


def substitute(text: str, values: Mapping[str, str]) -> str:
    """Replace `$name`, `${name}`, `${name:format}` and `[[name]]`; an unknown variable is an error."""

    def replace(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        if name not in values:
            raise KeyError(f"dashboard variable ${name} is not defined in templating.list")
        return values[name]

    return _VARIABLE.sub(replace, text)


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def dashboard_exprs(path: Path = DASHBOARD) -> list[PromQLExpr]:
    """Every panel query, plus the series selector inside each `label_values(...)` variable query."""
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    values = _variable_values(dashboard)
    exprs: list[PromQLExpr] = []
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable["type"] != "query":
            continue
        query = variable["query"]
        text = query["query"] if isinstance(query, dict) else query
        match = _LABEL_VALUES.match(text)
        name = variable["name"]
        if match is None:
            raise ValueError(f"variable {name}: expected label_values(<selector>, <label>), got {text!r}")
        exprs.append(PromQLExpr(f"dashboard variable {name}", substitute(match["selector"], values)))
    for panel in _panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            source = f"dashboard panel {panel['title']!r} {target['refId']}"
            exprs.append(PromQLExpr(source, substitute(target["expr"], values)))
    return exprs


def alert_exprs(path: Path = ALERTS) -> list[PromQLExpr]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [
        PromQLExpr(f"alert {rule['alert']}" if "alert" in rule else f"record {rule['record']}", rule["expr"])
        for group in document["groups"]
        for rule in group["rules"]
    ]


def all_exprs() -> list[PromQLExpr]:
    return dashboard_exprs() + alert_exprs()


_AGGREGATION = re.compile(
    r"\b(?P<op>sum|min|max|avg|count|group|stddev|stdvar|topk|bottomk|quantile)\s*"
    r"(?:(?P<kind>by|without)\s*\((?P<labels>[^()]*)\))?\s*\("
)


def aggregations_dropping(expr: str, labels: tuple[str, ...]) -> list[str]:
    """The aggregations of `expr` (text from the operator) whose result loses any of `labels`: no `by`,
    a `by` without them, or a `without` naming them."""
    text = _STRING.sub('""', expr)
    dropping = []
    for match in _AGGREGATION.finditer(text):
        kept = {label.strip() for label in (match["labels"] or "").split(",")}
        if match["kind"] == "without":
            lost = bool(kept & set(labels))
        else:
            lost = match["kind"] is None or not set(labels) <= kept
        if lost:
            dropping.append(text[match.start() : match.end() + 40])
    return dropping


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (not functions, keywords, label names or durations)."""
    text = _STRING.sub(" ", expr)
    previous = None
    while previous != text:
        previous = text
        text = _BRACES.sub(" ", text)
    text = _BRACKETS.sub(" ", text)
    text = _LABEL_LIST.sub(" ", text)
    return {name for name in _IDENTIFIER.findall(text) if name not in _NOT_METRICS}
