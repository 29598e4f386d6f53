"""The Prometheus alert rules and the Grafana dashboard of the bridge, generated from one source.

    make monitoring            (python -m tools.monitoring) writes
      deploy/prometheus/alerts.yaml             rules for a Prometheus that scrapes the bridge as job
                                                "idaas-siem-bridge" (the compose stack)
      helm/idaas-siem-bridge/files/alerts.yaml  the chart's rules: each expr is rendered with Helm's `tpl`,
                                                which scopes it to the release (namespace, job = full name)
                                                and sets the no-delivery threshold from the chart's values
      deploy/grafana/idaas-siem-bridge.json and helm/idaas-siem-bridge/files/idaas-siem-bridge.json
                                                the dashboard (identical copies)

Edit this module, never the generated files (tests/unit/test_monitoring_generated.py compares them).

Two releases (staging and prod, or two namespaces with the same release name) are never mixed: every
aggregation keeps `namespace` and `job` (the chart's ServiceMonitor sets `job` to the release's full name).
The IDaaS limits come from the bridge's own modules: the 3 s deadline (bridge.config) and the 100 failures
after which IDaaS disables a webhook (bridge.idaas_delivery).
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

import tools
from bridge.adminapi.watcher import EXPIRY_WARNING_DAYS
from bridge.config import IDAAS_DEADLINE_SECONDS
from bridge.guard import STREAK_WARNING
from bridge.idaas_delivery import DISABLE_AFTER

ROOT: Final = tools.ROOT
ALERTS: Final = Path("deploy/prometheus/alerts.yaml")
DASHBOARD: Final = Path("deploy/grafana/idaas-siem-bridge.json")
CHART_ALERTS: Final = Path("helm/idaas-siem-bridge/files/alerts.yaml")
CHART_DASHBOARD: Final = Path("helm/idaas-siem-bridge/files/idaas-siem-bridge.json")
RUNBOOKS: Final = Path("docs/runbooks.md")

#: The labels that tell one release from another; every aggregation keeps them.
RELEASE_LABELS: Final = ("namespace", "job")
#: The scrape job of the compose stack's Prometheus (deploy/prometheus/prometheus.yml).
COMPOSE_JOB: Final = "idaas-siem-bridge"

# --- thresholds: the IDaaS limits, and the alert levels derived from or set against them ----------------
#: The failure streak alerts warn at a fifth of IDaaS's limit (bridge.guard.STREAK_WARNING) and page at half.
STREAK_CRITICAL: Final = DISABLE_AFTER // 2
#: p99 answer time that warns while there is still a margin to IDaaS's deadline.
SLOW_P99_SECONDS: Final = IDAAS_DEADLINE_SECONDS - 1
SPOOL_FILLING_RATIO: Final = 0.5
SPOOL_ALMOST_FULL_RATIO: Final = 0.8
SPOOL_OLD_SECONDS: Final = 300
AUTH_FAILURES_PER_SECOND: Final = 0.1
DEADLETTER_WINDOW_SECONDS: Final = 900
#: How long an alert says that damaged spool data was moved to a quarantine file.
QUARANTINE_WINDOW_SECONDS: Final = 3600
#: A webhook expiring sooner than this warns (the `webhooks` command flags it too).
WEBHOOK_EXPIRY_WARNING_DAYS: Final = EXPIRY_WARNING_DAYS
#: Default of the chart value prometheusRule.noDeliveriesHours.
NO_DELIVERIES_HOURS: Final = 6


@dataclass(frozen=True)
class Target:
    """Where a set of rules runs: the label matchers that pick the bridge's series (label, value), the
    no-delivery threshold in hours (a number, or a Helm template for the chart) and the runbook document."""

    selector: tuple[tuple[str, str], ...]
    no_deliveries_hours: str
    runbook_url: str


def project_runbook_url() -> str:
    """docs/runbooks.md in the project's repository (pyproject.toml [project.urls] Repository)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return f"{project['urls']['Repository']}/blob/main/{RUNBOOKS}"


def compose_target(runbook_url: str) -> Target:
    return Target((("job", COMPOSE_JOB),), str(NO_DELIVERIES_HOURS), runbook_url)


def chart_target(runbook_url: str) -> Target:
    return Target(
        (("namespace", "{{ .Release.Namespace }}"), ("job", '{{ include "idaas-siem-bridge.fullname" . }}')),
        "{{ .Values.prometheusRule.noDeliveriesHours }}",
        runbook_url,
    )


# --- PromQL building blocks -------------------------------------------------------------------------------


def select(metric: str, matchers: Iterable[str]) -> str:
    return f"{metric}{{{', '.join(matchers)}}}"


def by(*labels: str) -> str:
    """A `by`/`on` label list that keeps the release labels."""
    return f"({', '.join((*RELEASE_LABELS, *labels))})"


FAILED: Final = 'result="failed"'
NOT_ACKED: Final = 'result=~"failed|timeout"'
NOT_DELIVERED: Final = 'result!="delivered"'
DELIVERED: Final = 'result="delivered"'
DUPLICATE: Final = 'status="duplicate"'
FAILED_SIGN_IN: Final = 'outcome="failure"'


def number(value: float) -> str:
    return f"{value:g}"


# --- alert rules ------------------------------------------------------------------------------------------

POD: Final = "{{ $labels.namespace }}/{{ $labels.pod }}"
RELEASE: Final = "{{ $labels.namespace }}/{{ $labels.job }}"
WEBHOOK: Final = f"Webhook {{{{ $labels.webhook }}}} of {RELEASE}"


def alert_rules(target: Target) -> list[dict[str, Any]]:
    matchers = [f'{label}="{value}"' for label, value in target.selector]

    def s(metric: str, *extra: str) -> str:
        return select(metric, [*matchers, *extra])

    def rule(
        name: str, expr: str, duration: str | None, severity: str, summary: str, description: str
    ) -> dict[str, Any]:
        found: dict[str, Any] = {"alert": name, "expr": Expr(expr)}
        if duration:
            found["for"] = duration
        found["labels"] = {"severity": severity}
        found["annotations"] = {
            "summary": Prose(summary),
            "description": Prose(description),
            "runbook_url": f"{target.runbook_url}#{name.lower()}",
        }
        return found

    streak = f"sum by {by('webhook')} ({s('idaas_bridge_failure_streak')})"
    spool_fill = f"{s('idaas_bridge_spool_bytes')} / {s('idaas_bridge_spool_max_bytes')}"
    deadline = number(IDAAS_DEADLINE_SECONDS)
    return [
        rule(
            "IdaasBridgeWebhookAutoDisableRisk",
            f"{streak} >= {STREAK_WARNING}",
            "1m",
            "warning",
            f"{WEBHOOK} keeps failing deliveries towards IDaaS's auto-disable",
            "The last {{ $value }} deliveries of the webhook were answered with a non-2xx status or after "
            f"IDaaS's {deadline} s deadline (summed over the release's pods, an upper bound "
            "of IDaaS's count). "
            f"IDaaS disables the webhook at {DISABLE_AFTER} consecutive failures and then "
            "stops sending events.",
        ),
        rule(
            "IdaasBridgeWebhookAutoDisableImminent",
            f"{streak} >= {STREAK_CRITICAL}",
            None,
            "critical",
            f"{WEBHOOK} is close to IDaaS's auto-disable",
            f"{{{{ $value }}}} consecutive deliveries of the webhook failed. At "
            f"{DISABLE_AFTER}, IDaaS disables "
            "the webhook and every later event is lost until someone re-enables it.",
        ),
        # The watcher's gauges (idaas_bridge_webhook_*) are the same on every pod that reads the Admin API;
        # max/min over the release's pods keep one alert per webhook.
        rule(
            "IdaasBridgeWebhookDisabled",
            f"max by {by('webhook')} ({s('idaas_bridge_webhook_enabled')}) == 0",
            None,
            "critical",
            f"{WEBHOOK} is disabled in IDaaS: no events are being sent",
            "The IDaaS Administration API reports the webhook disabled, expired, or no webhook with its "
            f"callback URL at all. IDaaS disables a webhook after {DISABLE_AFTER} consecutive failed "
            "deliveries, at its expiry date, or when an admin switches it off; until it is enabled again "
            "every event is lost.",
        ),
        rule(
            "IdaasBridgeWebhookExpiresSoon",
            f"min by {by('webhook')} ({s('idaas_bridge_webhook_expiry_timestamp_seconds')} > 0) - time() "
            f"< {WEBHOOK_EXPIRY_WARNING_DAYS} * 86400",
            None,
            "warning",
            f"{WEBHOOK} expires in IDaaS within {WEBHOOK_EXPIRY_WARNING_DAYS} days",
            "The webhook expires in {{ $value | humanizeDuration }}. At its expiry date IDaaS disables it "
            "and stops sending events.",
        ),
        rule(
            "IdaasBridgeWebhookUnknownEventTypes",
            f"max by {by('webhook')} ({s('idaas_bridge_webhook_unknown_event_types')}) > 0",
            None,
            "info",
            f"{WEBHOOK} subscribes to event types the bridge does not know",
            "{{ $value }} event type(s) the webhook subscribes to have no row in the bridge's catalog. Their "
            "events are published to the unknown topic, not normalized. `idaas-bridge webhooks` names them.",
        ),
        # The run counters exist per webhook from the start (at 0), so the first failure is an increase.
        rule(
            "IdaasBridgeBackfillFailed",
            f"sum by {by('webhook')} (increase({s('idaas_bridge_backfill_runs_total', FAILED)}[1h])) > 0",
            None,
            "warning",
            f"The automatic backfill of {WEBHOOK[0].lower()}{WEBHOOK[1:]} fails",
            "{{ $value }} automatic backfill run(s) of the webhook's gap failed in the last hour (the IDaaS "
            "Administration API or Kafka failed). Each is retried from its checkpoint with back-off, also "
            "after a restart; until one completes, the events IDaaS never delivered during the gap are not "
            "in Kafka.",
        ),
        rule(
            "IdaasBridgeKafkaPublishFailing",
            f"sum by {by('topic')} (rate({s('idaas_bridge_kafka_messages_total', NOT_ACKED)}[5m])) > 0",
            "5m",
            "warning",
            f"{RELEASE} fails to publish to Kafka topic {{{{ $labels.topic }}}}",
            '{{ printf "%.2f" $value }} messages/s to the topic were not acknowledged by Kafka (failed or '
            "past the ack deadline) over the last 5 minutes. Deliveries are being spooled locally while the "
            "spool has room.",
        ),
        rule(
            "IdaasBridgeKafkaUnreachable",
            f"{s('idaas_bridge_kafka_up')} == 0",
            "2m",
            "critical",
            f"Bridge {POD} cannot reach Kafka",
            "The bridge's metadata requests to Kafka have failed for 2 minutes. Deliveries go to the spool "
            "until it is full, then IDaaS gets 503s.",
        ),
        rule(
            "IdaasBridgeSpoolFilling",
            f"{spool_fill} > {number(SPOOL_FILLING_RATIO)}",
            "5m",
            "warning",
            f"Spool of {POD} is more than half full",
            "{{ $value | humanizePercentage }} of spool.max_bytes is used by records Kafka has not confirmed "
            "yet. When the spool is full, deliveries are answered 503 and the webhook's "
            "failure streak grows.",
        ),
        rule(
            "IdaasBridgeSpoolAlmostFull",
            f"{spool_fill} > {number(SPOOL_ALMOST_FULL_RATIO)}",
            "2m",
            "critical",
            f"Spool of {POD} is almost full",
            "{{ $value | humanizePercentage }} of spool.max_bytes is used. Once full, every "
            "delivery gets 503 "
            f"and IDaaS disables the webhook after {DISABLE_AFTER} of them.",
        ),
        rule(
            "IdaasBridgeSpoolRecordsOld",
            f"{s('idaas_bridge_spool_oldest_record_age_seconds')} > {SPOOL_OLD_SECONDS}",
            "2m",
            "warning",
            f"Spooled records on {POD} are not reaching Kafka",
            "The oldest record in the spool has waited {{ $value | humanizeDuration }} for Kafka, so SIEMs "
            "are missing recent events.",
        ),
        rule(
            "IdaasBridgeSpoolWriteErrors",
            f"increase({s('idaas_bridge_spool_write_errors_total')}[10m]) > 0",
            None,
            "warning",
            f"Spool writes are failing on {POD}",
            "{{ $value | humanize }} spool write(s) failed in the last 10 minutes (disk full or I/O errors), "
            "each answered 503. While Kafka is slow or down, deliveries to this pod fail until the disk "
            "recovers.",
        ),
        # Damage is found at start-up, before the first scrape: a new pod's counter is born above 0, which
        # increase() does not count; the second branch catches it through the process's fresh *_created.
        rule(
            "IdaasBridgeSpoolQuarantined",
            f"increase({s('idaas_bridge_spool_quarantined_bytes_total')}[{QUARANTINE_WINDOW_SECONDS}s]) > 0\n"
            "or\n"
            f"({s('idaas_bridge_spool_quarantined_bytes_total')} > 0 and "
            f"time() - {s('idaas_bridge_spool_quarantined_bytes_created')} < {QUARANTINE_WINDOW_SECONDS})",
            None,
            "warning",
            f"Damaged spool data was moved to a quarantine file on {POD}",
            "{{ $value | humanize1024 }}B of spool segments could not be read (a crash mid-write, a "
            "zero-filled tail, a corrupted disk) and were moved to quarantine-*.bin files in the spool "
            "directory. Everything readable before them was drained; records inside them did not reach "
            "Kafka.",
        ),
        rule(
            "IdaasBridgeRejectedRecords",
            f"{s('idaas_bridge_rejected_records')} > 0",
            None,
            "warning",
            f"Records refused by Kafka wait on {POD}",
            "{{ $value }} accepted event(s) were refused by Kafka for good (larger than a topic's "
            "max.message.bytes, or a timestamp outside the broker's range). They are kept in rejected.jsonl "
            "on the spool volume instead of blocking the spool, but SIEMs do not have them yet.",
        ),
        # The first dead letter of a (webhook, reason) creates its counter series at 1, which increase() does
        # not count; the second branch catches it through the series' creation time (the *_created sample).
        rule(
            "IdaasBridgeDeadLetters",
            f"sum by {by('webhook', 'reason')} (increase({s('idaas_bridge_deadletters_total')}[15m])) > 0\n"
            "or\n"
            f"count by {by('webhook', 'reason')} "
            f"(time() - {s('idaas_bridge_deadletters_created')} < {DEADLETTER_WINDOW_SECONDS})",
            None,
            "warning",
            f"Deliveries of {WEBHOOK[0].lower()}{WEBHOOK[1:]} went to the dead-letter topic "
            "({{ $labels.reason }})",
            "Authenticated deliveries could not be published as events (reason {{ "
            "$labels.reason }}) and were "
            "written raw to the dead-letter topic. They are kept, but SIEMs do not see them as events.",
        ),
        rule(
            "IdaasBridgeAuthFailuresSpiking",
            f"sum by {by('webhook', 'reason')} (rate({s('idaas_bridge_auth_failures_total')}[5m])) "
            f"> {number(AUTH_FAILURES_PER_SECOND)}",
            "5m",
            "warning",
            f"{WEBHOOK} rejects many requests ({{{{ $labels.reason }}}})",
            '{{ printf "%.2f" $value }} requests/s to the webhook failed signature verification with reason '
            "{{ $labels.reason }} for 5 minutes. Either the token in IDaaS and the bridge differ, or someone "
            "is probing the endpoint.",
        ),
        rule(
            "IdaasBridgeSlowAnswers",
            f"histogram_quantile(0.99, sum by {by('webhook', 'le')} "
            f"(rate({s('idaas_bridge_request_duration_seconds_bucket')}[5m])))\n"
            f"> {number(SLOW_P99_SECONDS)}",
            "10m",
            "warning",
            f"{WEBHOOK} answers slowly",
            f"IDaaS counts an answer slower than {deadline} s as a failure. The p99 answer "
            "time of the webhook "
            "has been {{ $value | humanizeDuration }} for 10 minutes.",
        ),
        rule(
            "IdaasBridgeDown",
            f"{s('up')} == 0",
            "2m",
            "critical",
            f"Bridge {POD} is down",
            "Prometheus cannot scrape {{ $labels.instance }}. If every replica is down, "
            "IDaaS deliveries fail "
            f"and count towards the webhook's auto-disable at {DISABLE_AFTER} failures.",
        ),
        rule(
            "IdaasBridgeAbsent",
            f"absent({s('up')})",
            "5m",
            "critical",
            "No bridge target is being scraped",
            "Prometheus has no target with job {{ $labels.job }}{{ with $labels.namespace }} in namespace "
            "{{ . }}{{ end }}: the bridge is not deployed, its ServiceMonitor is not selected, or the job is "
            "named differently.",
        ),
        # Per webhook: the time since the last 2xx answer, or since the process started when it has not
        # answered one yet (the guard exports a failure streak for every configured webhook from the start).
        rule(
            "IdaasBridgeNoRecentDeliveries",
            f"time() - max by {by('webhook')} (\n"
            f"  {s('idaas_bridge_last_success_timestamp_seconds')}\n"
            f"  or on {by('instance', 'webhook')}\n"
            f"  ({s('idaas_bridge_failure_streak')} * 0 + on {by('instance')} group_left "
            f"{s('process_start_time_seconds')})\n"
            f") > {target.no_deliveries_hours} * 3600",
            "10m",
            "warning",
            f"{WEBHOOK} has accepted no delivery for hours",
            "No delivery to the webhook was answered with 2xx for {{ $value | humanizeDuration }}. The "
            "webhook may be disabled in IDaaS, its callback URL may point elsewhere, or the tenant is simply "
            "quiet.",
        ),
    ]


class Expr(str):
    """PromQL: written as a literal block, so the YAML keeps its lines as they are."""


class Prose(str):
    """An annotation's text: folded at the line width."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(
    Expr, lambda dumper, value: dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
)
_Dumper.add_representer(
    Prose,
    lambda dumper, value: dumper.represent_scalar(
        "tag:yaml.org,2002:str", value, style=">" if len(value) > 80 else None
    ),
)


def alerts_yaml(target: Target, header: str) -> str:
    document = {"groups": [{"name": "idaas-siem-bridge", "rules": alert_rules(target)}]}
    body = yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=110, allow_unicode=True)
    return header + body


COMPOSE_HEADER: Final = f"""\
# Prometheus alerting rules for idaas-siem-bridge. GENERATED by `make monitoring` (tools/monitoring.py): edit
# the generator, not this file. Unit tests: deploy/prometheus/alerts.test.yaml (promtool test rules).
# Selects the bridge's series with job="{COMPOSE_JOB}" (deploy/prometheus/prometheus.yml); the Helm chart
# ships its own copy scoped to each release. Runbooks: docs/runbooks.md.
"""
CHART_HEADER: Final = """\
# The chart's alert rules. GENERATED by `make monitoring` (tools/monitoring.py): edit the generator, not
# this file. templates/prometheusrule.yaml renders every expr with `tpl` (scoping it to the release's
# namespace and job, and setting prometheusRule.noDeliveriesHours); annotations pass through untouched.
"""


# --- dashboard --------------------------------------------------------------------------------------------

DATASOURCE: Final = {"type": "prometheus", "uid": "${datasource}"}
#: Selectors of every dashboard query: one release (namespace and job are single-value variables), any pods.
SCOPE: Final = ('namespace=~"$namespace"', 'job=~"$job"', 'pod=~"$pod"')
WEBHOOKS: Final = 'webhook=~"$webhook"'
RATE: Final = "[$__rate_interval]"


def q(metric: str, *extra: str) -> str:
    return select(metric, (*SCOPE, *extra))


Steps = Sequence[tuple[str, float | None]]
Query = tuple[str, str]  # (expr, legend)


def _thresholds(steps: Steps) -> dict[str, Any]:
    return {"mode": "absolute", "steps": [{"color": color, "value": value} for color, value in steps]}


def _targets(targets: Sequence[Query]) -> list[dict[str, Any]]:
    return [
        {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": chr(ord("A") + index)}
        | {"range": True}
        for index, (expr, legend) in enumerate(targets)
    ]


def row(title: str) -> dict[str, Any]:
    return {"type": "row", "title": title, "collapsed": False, "panels": [], "gridPos": {"h": 1, "w": 24}}


def stat(title: str, description: str, expr: str, legend: str, unit: str, steps: Steps) -> dict[str, Any]:
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"h": 4, "w": 4},
        "targets": _targets([(expr, legend)]),
        "fieldConfig": {
            "defaults": {"unit": unit, "thresholds": _thresholds(steps), "color": {"mode": "thresholds"}},
            "overrides": [],
        },
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "graphMode": "area",
            "textMode": "auto",
        },
    }


def timeseries(
    title: str,
    description: str,
    targets: Sequence[Query],
    unit: str = "short",
    *,
    steps: Steps = (),
    line: bool = False,
    stacked: bool = False,
    limits: tuple[float, float] | None = None,
    overrides: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """`steps` beyond green are threshold colours; `line` draws them as lines (the IDaaS limits)."""
    custom: dict[str, Any] = {
        "drawStyle": "line",
        "lineWidth": 1,
        "fillOpacity": 10,
        "showPoints": "never",
        "spanNulls": False,
        "axisSoftMin": 0,
        "thresholdsStyle": {"mode": "line" if line else "off"},
    }
    if stacked:
        custom["stacking"] = {"mode": "normal", "group": "A"}
    defaults: dict[str, Any] = {
        "unit": unit,
        "custom": custom,
        "thresholds": _thresholds([("green", None), *steps]),
        "color": {"mode": "palette-classic"},
    }
    if limits:
        defaults["min"], defaults["max"] = limits
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": 12},
        "targets": _targets(targets),
        "fieldConfig": {"defaults": defaults, "overrides": list(overrides)},
        "options": {
            "legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def override(ref_or_regex: str, properties: dict[str, Any], *, regex: bool = False) -> dict[str, Any]:
    matcher = {"id": "byRegexp" if regex else "byFrameRefID", "options": ref_or_regex}
    return {
        "matcher": matcher,
        "properties": [{"id": key, "value": value} for key, value in properties.items()],
    }


RIGHT_AXIS: Final = {"custom.axisPlacement": "right"}


def _panels() -> list[dict[str, Any]]:
    deadline = number(IDAAS_DEADLINE_SECONDS)
    streak = f"sum by {by('webhook')} ({q('idaas_bridge_failure_streak', WEBHOOKS)})"
    fill = f"{q('idaas_bridge_spool_bytes')} / {q('idaas_bridge_spool_max_bytes')}"
    deliveries = q("idaas_bridge_deliveries_total", WEBHOOKS)
    durations = q("idaas_bridge_request_duration_seconds_bucket", WEBHOOKS)
    kafka_messages = "idaas_bridge_kafka_messages_total"
    spool_records = q("idaas_bridge_spool_records")
    authentications = q("idaas_bridge_authentications_total")

    def zero_when_idle(expr: str, labels: str, baseline: str) -> str:
        """`expr`, or 0 for each `labels` group the baseline has: a flat line instead of "No data"."""
        return f"{expr} or on {labels} {baseline} * 0"

    def quantile(level: float, labels: str, series: str) -> str:
        return f"histogram_quantile({level:g}, sum by {labels} (rate({series}{RATE})))"

    return [
        row("Overview"),
        stat(
            "Bridge targets up",
            "Scraped bridge processes answering /metrics (Prometheus `up`).",
            f"sum by {by()} ({q('up')})",
            "up",
            "short",
            [("red", None), ("green", 1)],
        ),
        stat(
            "Kafka reachable",
            "1 when every selected bridge's last Kafka metadata request succeeded.",
            f"min by {by()} ({q('idaas_bridge_kafka_up')})",
            "kafka up",
            "short",
            [("red", None), ("green", 1)],
        ),
        stat(
            "Deliveries/s",
            "Authenticated deliveries per second, every outcome.",
            f"sum by {by()} (rate({deliveries}{RATE}))",
            "deliveries/s",
            "reqps",
            [("green", None)],
        ),
        stat(
            "Worst failure streak",
            f"Highest consecutive-failure count of any webhook (IDaaS disables at {DISABLE_AFTER}).",
            f"max by {by()} ({streak})",
            "streak",
            "short",
            [("green", None), ("orange", STREAK_WARNING), ("red", STREAK_CRITICAL)],
        ),
        stat(
            "Spooled records",
            "Records waiting in the local spools for Kafka.",
            f"sum by {by()} ({spool_records})",
            "records",
            "short",
            [("green", None), ("orange", 1)],
        ),
        stat(
            "Spool fill",
            "Fullest spool relative to spool.max_bytes.",
            f"max by {by()} ({fill})",
            "fill",
            "percentunit",
            [("green", None), ("orange", SPOOL_FILLING_RATIO), ("red", SPOOL_ALMOST_FULL_RATIO)],
        ),
        row("Deliveries"),
        timeseries(
            "Deliveries per second by status and event type",
            "Authenticated deliveries by outcome (published, spooled, duplicate, deadletter, "
            "unavailable) and "
            "IDaaS event type.",
            [
                (
                    f"sum by {by('status', 'event_type')} (rate({deliveries}{RATE}))",
                    "{{status}} {{event_type}}",
                )
            ],
            "reqps",
            stacked=True,
        ),
        timeseries(
            "Answers by HTTP status",
            "Every answer to a webhook POST by status code, as IDaaS counts them (2xx success, anything else "
            "a failure).",
            [
                (
                    f"sum by {by('code')} (rate({q('idaas_bridge_http_responses_total', WEBHOOKS)}{RATE}))",
                    "{{code}}",
                )
            ],
            "reqps",
            stacked=True,
        ),
        timeseries(
            f"Ack latency (p50 / p95 / p99) vs IDaaS's {deadline} s deadline",
            f"Time from request start to the answer. IDaaS counts an answer slower than {deadline} s (red "
            "line) as a failure.",
            [(quantile(level, by("le"), durations), f"p{round(level * 100)}") for level in (0.5, 0.95, 0.99)],
            "s",
            steps=[("red", IDAAS_DEADLINE_SECONDS)],
            line=True,
        ),
        timeseries(
            "p99 ack latency by webhook",
            "99th percentile answer time per webhook.",
            [(quantile(0.99, by("webhook", "le"), durations), "{{webhook}}")],
            "s",
            steps=[("red", IDAAS_DEADLINE_SECONDS)],
            line=True,
        ),
        row("IDaaS webhook health"),
        timeseries(
            f"Failure streak per webhook vs IDaaS's limit of {DISABLE_AFTER}",
            f"Consecutive non-2xx (or slower than {deadline} s) answers per webhook, summed over pods. IDaaS "
            f"disables the webhook at {DISABLE_AFTER}; alerts fire at {STREAK_WARNING} and "
            f"{STREAK_CRITICAL}.",
            [(streak, "{{webhook}}")],
            steps=[("orange", STREAK_WARNING), ("red", STREAK_CRITICAL), ("dark-red", DISABLE_AFTER)],
            line=True,
            limits=(0, DISABLE_AFTER),
        ),
        timeseries(
            "Time since the last 2xx per webhook",
            "How long ago each webhook last answered a delivery with 2xx (alert "
            "IdaasBridgeNoRecentDeliveries).",
            [
                (
                    f"time() - max by {by('webhook')} "
                    f"({q('idaas_bridge_last_success_timestamp_seconds', WEBHOOKS)})",
                    "{{webhook}}",
                )
            ],
            "s",
        ),
        timeseries(
            "Webhook state in IDaaS (Admin API)",
            "Per webhook, as the IDaaS Administration API reports it: enabled (1) or not (0: disabled, "
            "expired or not registered), registered (an IDaaS webhook has its callback URL), and event types "
            "it subscribes to that the catalog does not know. Alerts IdaasBridgeWebhookDisabled and "
            "IdaasBridgeWebhookUnknownEventTypes.",
            [
                (
                    f"max by {by('webhook')} ({q('idaas_bridge_webhook_enabled', WEBHOOKS)})",
                    "{{webhook}} enabled",
                ),
                (
                    f"max by {by('webhook')} ({q('idaas_bridge_webhook_registered', WEBHOOKS)})",
                    "{{webhook}} registered",
                ),
                (
                    f"max by {by('webhook')} ({q('idaas_bridge_webhook_expired', WEBHOOKS)})",
                    "{{webhook}} expired",
                ),
                (
                    f"max by {by('webhook')} ({q('idaas_bridge_webhook_unknown_event_types', WEBHOOKS)})",
                    "{{webhook}} unknown types",
                ),
            ],
        ),
        timeseries(
            "Time until each webhook expires in IDaaS",
            f"From the webhook's expiry date (Admin API); none shown for a webhook that never expires. Alert "
            f"IdaasBridgeWebhookExpiresSoon below {WEBHOOK_EXPIRY_WARNING_DAYS} days.",
            [
                (
                    f"min by {by('webhook')} "
                    f"({q('idaas_bridge_webhook_expiry_timestamp_seconds', WEBHOOKS)} > 0) - time()",
                    "{{webhook}}",
                )
            ],
            "s",
        ),
        timeseries(
            "Webhook re-enables (admin_api.reenable)",
            "Guarded re-enable attempts per webhook by result: reenabled, or why not (unhealthy, "
            "rate_limited, test_not_received, expired, failed, ...).",
            [
                (
                    zero_when_idle(
                        f"sum by {by('webhook', 'result')} "
                        f"(increase({q('idaas_bridge_webhook_reenables_total', WEBHOOKS)}{RATE}))",
                        by("webhook"),
                        streak,
                    ),
                    "{{webhook}} {{result}}",
                )
            ],
        ),
        timeseries(
            "Automatic backfills (admin_api.backfill_automatic)",
            "Backfills of a webhook's gap after it recovered, per webhook by result (completed, failed: "
            "retried from its checkpoint; alert IdaasBridgeBackfillFailed), and the length of the last gap "
            "(right axis).",
            [
                (
                    zero_when_idle(
                        f"sum by {by('webhook', 'result')} "
                        f"(increase({q('idaas_bridge_backfill_runs_total', WEBHOOKS)}{RATE}))",
                        by("webhook"),
                        streak,
                    ),
                    "{{webhook}} {{result}}",
                ),
                (
                    zero_when_idle(
                        f"max by {by('webhook')} ({q('idaas_bridge_backfill_gap_seconds', WEBHOOKS)})",
                        by("webhook"),
                        streak,
                    ),
                    "{{webhook}} gap",
                ),
            ],
            overrides=[override("B", {**RIGHT_AXIS, "unit": "s"})],
        ),
        timeseries(
            "Backfilled audit records by type and result",
            "Audit records the automatic backfills read, by webhook type and result: published (IDaaS had "
            "not delivered it), duplicate (its fingerprint was in Kafka), unmapped (no trusted mapping: type "
            "`unknown`), unsubscribed (a type the webhook does not subscribe to).",
            [
                (
                    zero_when_idle(
                        f"sum by {by('event_type', 'result')} "
                        f"(increase({q('idaas_bridge_backfill_events_total', WEBHOOKS)}{RATE}))",
                        by(),
                        f"sum by {by()} ({streak})",
                    ),
                    "{{event_type}} {{result}}",
                )
            ],
        ),
        timeseries(
            "Webhook state reads",
            "Reads of the webhooks' state through the Admin API by result (ok or the failure reason), and "
            "the age of the last good one.",
            [
                (
                    f"sum by {by('result')} (rate({q('idaas_bridge_webhook_checks_total')}{RATE}))",
                    "{{result}}",
                ),
                (f"time() - max by {by()} ({q('idaas_bridge_webhook_last_check_timestamp_seconds')})", "age"),
            ],
            overrides=[override("B", {**RIGHT_AXIS, "unit": "s"})],
        ),
        timeseries(
            "IDaaS Admin API requests by answer",
            "Requests the bridge made to the IDaaS Administration API per operation and HTTP status "
            "(`error`: no answer). Steady 401/403 mean a wrong secret or a role without the permission "
            "(docs/operations.md); 429/5xx are retried with back-off.",
            [
                (
                    f"sum by {by('operation', 'code')} "
                    f"(rate({q('idaas_bridge_admin_api_requests_total')}{RATE}))",
                    "{{operation}} {{code}}",
                )
            ],
            "reqps",
        ),
        row("Kafka"),
        timeseries(
            "Kafka publish failures",
            "Messages Kafka did not acknowledge (failed) or not within the ack deadline "
            "(timeout), per topic. "
            "Those deliveries were spooled.",
            [
                (
                    zero_when_idle(
                        f"sum by {by('topic', 'result')} (rate({q(kafka_messages, NOT_DELIVERED)}{RATE}))",
                        by("topic"),
                        f"sum by {by('topic')} (rate({q(kafka_messages)}{RATE}))",
                    ),
                    "{{topic}} {{result}}",
                )
            ],
            steps=[("red", 0.001)],
        ),
        timeseries(
            "Kafka messages delivered per second by topic",
            "Messages acknowledged by Kafka (acks=all), direct and drained from the spool.",
            [(f"sum by {by('topic')} (rate({q(kafka_messages, DELIVERED)}{RATE}))", "{{topic}}")],
            stacked=True,
        ),
        timeseries(
            "Kafka ack latency p99 by topic",
            "Time from produce() to the broker's acknowledgement.",
            [
                (
                    quantile(
                        0.99, by("topic", "le"), q("idaas_bridge_kafka_publish_duration_seconds_bucket")
                    ),
                    "{{topic}}",
                )
            ],
            "s",
        ),
        timeseries(
            "Producer queue",
            "Messages and bytes waiting in the librdkafka producer queue (statistics msg_cnt and msg_size).",
            [
                (
                    f"sum by {by('pod')} ({q('idaas_bridge_kafka_producer_queue_messages')})",
                    "{{pod}} messages",
                ),
                (f"sum by {by('pod')} ({q('idaas_bridge_kafka_producer_queue_bytes')})", "{{pod}} bytes"),
            ],
            overrides=[override("B", {"unit": "bytes", **RIGHT_AXIS})],
        ),
        timeseries(
            "Broker round-trip time",
            "Average broker round-trip time per broker over the last librdkafka statistics interval.",
            [(f"max by {by('broker')} ({q('idaas_bridge_kafka_broker_rtt_seconds')})", "{{broker}}")],
            "s",
        ),
        timeseries(
            "Kafka reachable per bridge",
            "1 when the bridge's last metadata request to Kafka succeeded, else 0.",
            [(f"max by {by('pod')} ({q('idaas_bridge_kafka_up')})", "{{pod}}")],
            limits=(0, 1),
        ),
        row("Spool"),
        timeseries(
            "Spool depth: bytes vs limit",
            "Bytes held in each bridge's spool, against spool.max_bytes. Above the limit deliveries get 503.",
            [
                (f"sum by {by('pod')} ({q('idaas_bridge_spool_bytes')})", "{{pod}} used"),
                (f"sum by {by('pod')} ({q('idaas_bridge_spool_max_bytes')})", "{{pod}} max"),
            ],
            "bytes",
            overrides=[
                override(
                    "B",
                    {
                        "custom.lineStyle": {"fill": "dash", "dash": [10, 10]},
                        "color": {"mode": "fixed", "fixedColor": "red"},
                    },
                )
            ],
        ),
        timeseries(
            "Spool depth: records and fill",
            f"Records waiting for Kafka, and the fill ratio (alerts at {SPOOL_FILLING_RATIO:.0%} and "
            f"{SPOOL_ALMOST_FULL_RATIO:.0%}).",
            [
                (f"sum by {by('pod')} ({spool_records})", "{{pod}} records"),
                (f"max by {by('pod')} ({fill})", "{{pod}} fill"),
            ],
            overrides=[override("B", {"unit": "percentunit", **RIGHT_AXIS, "max": 1})],
        ),
        timeseries(
            "Oldest spooled record age",
            "Age of the oldest record still waiting in the spool; 0 when empty. Alert above "
            f"{SPOOL_OLD_SECONDS // 60} minutes (red line).",
            [(f"max by {by('pod')} ({q('idaas_bridge_spool_oldest_record_age_seconds')})", "{{pod}}")],
            "s",
            steps=[("red", SPOOL_OLD_SECONDS)],
            line=True,
        ),
        timeseries(
            "Spool appends and drains per second",
            "Records written to the spool, and records drained to Kafka and released, per topic.",
            [
                (
                    zero_when_idle(
                        f"sum by {by('topic')} (rate({q('idaas_bridge_spool_appends_total')}{RATE}))",
                        by(),
                        f"sum by {by()} ({spool_records})",
                    ),
                    "appended {{topic}}",
                ),
                (
                    zero_when_idle(
                        f"-1 * sum by {by('topic')} (rate({q('idaas_bridge_spool_drained_total')}{RATE}))",
                        by(),
                        f"sum by {by()} ({spool_records})",
                    ),
                    "drained {{topic}}",
                ),
            ],
        ),
        timeseries(
            "Spool fsync p99 and errors",
            "Group-commit fsync duration, spool write errors (disk full, I/O), torn records and the bytes of "
            "damaged segments moved to quarantine files.",
            [
                (
                    quantile(0.99, by("le"), q("idaas_bridge_spool_fsync_duration_seconds_bucket")),
                    "fsync p99",
                ),
                (
                    f"sum by {by()} (increase({q('idaas_bridge_spool_write_errors_total')}{RATE}))",
                    "write errors",
                ),
                (
                    f"sum by {by()} (increase({q('idaas_bridge_spool_torn_records_total')}{RATE}))",
                    "torn records",
                ),
                (
                    f"sum by {by()} (increase({q('idaas_bridge_spool_quarantined_bytes_total')}{RATE}))",
                    "quarantined bytes",
                ),
            ],
            "s",
            overrides=[
                override(
                    "write errors|torn records|quarantined bytes", {"unit": "short", **RIGHT_AXIS}, regex=True
                )
            ],
        ),
        timeseries(
            "Records refused by Kafka (waiting in rejected.jsonl)",
            "Accepted events Kafka refused for good (too large for the topic, timestamp out of range). Fix "
            "the topic, then `idaas-bridge rejected --replay`.",
            [
                (f"sum by {by('pod')} ({q('idaas_bridge_rejected_records')})", "waiting: {{pod}}"),
                (
                    f"sum by {by('topic')} (increase({q('idaas_bridge_spool_rejected_total')}{RATE}))",
                    "newly refused: {{topic}}",
                ),
            ],
            steps=[("red", 1)],
            line=True,
        ),
        timeseries(
            "Left undone at shutdown",
            "What pods' shutdowns left when server.shutdown_grace_seconds or Kafka ran out: requests cut "
            "short, spooled records (lost with an emptyDir spool), unacknowledged producer messages.",
            [
                (
                    zero_when_idle(
                        f"sum by {by('what')} (increase({q('idaas_bridge_shutdown_left_total')}{RATE}))",
                        by(),
                        f"sum by {by()} ({spool_records})",
                    ),
                    "{{what}}",
                )
            ],
            steps=[("red", 1)],
        ),
        row("Dead letters and duplicates"),
        timeseries(
            "Dead letters per second",
            "Authenticated deliveries that could not be normalized and went raw to the dead-letter topic, by "
            "reason.",
            [
                (
                    zero_when_idle(
                        f"sum by {by('webhook', 'reason')} "
                        f"(rate({q('idaas_bridge_deadletters_total', WEBHOOKS)}{RATE}))",
                        by("webhook"),
                        streak,
                    ),
                    "{{webhook}} {{reason}}",
                )
            ],
            steps=[("red", 0.001)],
        ),
        timeseries(
            "Duplicate deliveries and dedup cache",
            "IDaaS retries of already accepted deliveries, and the number of delivery ids remembered.",
            [
                (
                    zero_when_idle(
                        f"sum by {by()} (rate({q('idaas_bridge_deliveries_total', WEBHOOKS, DUPLICATE)}"
                        f"{RATE}))",
                        by(),
                        f"sum by {by()} ({q('idaas_bridge_dedup_cache_entries')})",
                    ),
                    "duplicates/s",
                ),
                (f"sum by {by()} ({q('idaas_bridge_dedup_cache_entries')})", "cache entries"),
            ],
            overrides=[override("B", RIGHT_AXIS)],
        ),
        row("Security"),
        timeseries(
            "Sign-in failure ratio by resource",
            "Share of IDaaS sign-in events that failed, per IDaaS resource: Administration Portal, User "
            "Portal, other (any other resourceName) or none. A jump can mean password spraying or a broken "
            "integration; the SIEM has the exact resource.",
            [
                (
                    "("
                    + zero_when_idle(
                        f"sum by {by('resource')} "
                        f"(rate({q('idaas_bridge_authentications_total', FAILED_SIGN_IN)}{RATE}))",
                        by("resource"),
                        f"sum by {by('resource')} (rate({authentications}{RATE}))",
                    )
                    + f") / sum by {by('resource')} (rate({authentications}{RATE}))",
                    "{{resource}}",
                )
            ],
            "percentunit",
            steps=[("orange", 0.2), ("red", 0.5)],
            limits=(0, 1),
        ),
        timeseries(
            "Sign-ins per second by outcome",
            "IDaaS authentication events seen, by outcome.",
            [(f"sum by {by('outcome')} (rate({authentications}{RATE}))", "{{outcome}}")],
            stacked=True,
        ),
        timeseries(
            "Webhook auth failures by reason, client hang-ups, connections closed at the cap",
            "Requests rejected with 401 by reason (bad token, bad signature, stale created, ...), "
            "requests whose client hung up before its body arrived, and connections closed because a "
            "listener reached its connection cap (server.max_connections: a flood of connections). Steady "
            "failures from IDaaS mean a token mismatch (the failure streak rises with them); bursts of "
            "unsigned junk from elsewhere mean probing and do not move the streak.",
            [
                (
                    zero_when_idle(
                        f"sum by {by('webhook', 'reason')} "
                        f"(rate({q('idaas_bridge_auth_failures_total', WEBHOOKS)}{RATE}))",
                        by("webhook"),
                        streak,
                    ),
                    "{{webhook}} {{reason}}",
                ),
                (
                    f"sum by {by('webhook')} "
                    f"(rate({q('idaas_bridge_client_disconnects_total', WEBHOOKS)}{RATE}))",
                    "{{webhook}} client hung up mid-body",
                ),
                (
                    f"sum by {by('listener')} (rate({q('idaas_bridge_connections_evicted_total')}{RATE}))",
                    "{{listener}} connections closed at the cap",
                ),
            ],
            steps=[("red", AUTH_FAILURES_PER_SECOND)],
            line=True,
        ),
        row("Process"),
        timeseries(
            "CPU",
            "CPU seconds per second used by each bridge pod (its workers and serving process together).",
            [(f"sum by {by('pod')} (rate({q('process_cpu_seconds_total')}{RATE}))", "{{pod}}")],
            "percentunit",
        ),
        timeseries(
            "Memory",
            "Resident memory of each bridge pod (its workers and serving process together).",
            [(f"sum by {by('pod')} ({q('process_resident_memory_bytes')})", "{{pod}}")],
            "bytes",
        ),
        timeseries(
            "Workers",
            "Worker processes serving webhooks in each pod (server.workers above 1), and the workers that "
            "ended unasked and were started again.",
            [
                (f"sum by {by('pod')} ({q('idaas_bridge_workers')})", "{{pod}} workers"),
                (
                    f"sum by {by('pod')} (increase({q('idaas_bridge_worker_restarts_total')}{RATE}))",
                    "{{pod}} restarts",
                ),
            ],
            "short",
        ),
    ]


def _layout(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Number the panels and place them left to right, wrapping at Grafana's 24 columns."""
    x = y = line_height = 0
    for number_, panel in enumerate(panels, start=1):
        grid = panel["gridPos"]
        if x + grid["w"] > 24 or panel["type"] == "row":
            x, y, line_height = 0, y + line_height, 0
        panel["id"] = number_
        panel["gridPos"] = {"h": grid["h"], "w": grid["w"], "x": x, "y": y}
        x += grid["w"]
        line_height = max(line_height, grid["h"])
    return panels


def _query_variable(
    name: str, label: str, metric: str, *, scoped_by: Sequence[str], multi: bool
) -> dict[str, Any]:
    query = (
        f"label_values({select(metric, scoped_by)}, {name})"
        if scoped_by
        else f"label_values({metric}, {name})"
    )
    variable: dict[str, Any] = {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": query,
        "query": {"qryType": 1, "query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "refresh": 2,
        "sort": 1,
        "multi": multi,
        "includeAll": multi,
        "hide": 0,
        "regex": "",
        "options": [],
    }
    if multi:
        variable["allValue"] = ".*"
        variable["current"] = {"selected": True, "text": ["All"], "value": ["$__all"]}
    else:
        variable["current"] = {}
    return variable


def dashboard() -> dict[str, Any]:
    release = ['namespace=~"$namespace"', 'job=~"$job"']
    return {
        "uid": "idaas-siem-bridge",
        "title": "IDaaS SIEM bridge",
        "description": "Entrust IDaaS webhooks -> idaas-siem-bridge -> Kafka: deliveries, ack latency "
        "against "
        f"IDaaS's {number(IDAAS_DEADLINE_SECONDS)} s deadline, auto-disable risk, Kafka, "
        "spool, dead letters and "
        "sign-in security signals. One release (namespace and job) at a time. Generated "
        "by tools/monitoring.py.",
        "tags": ["idaas", "kafka", "siem", "webhooks"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "timezone": "",
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "links": [],
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "regex": "",
                    "current": {},
                    "hide": 0,
                    "includeAll": False,
                    "multi": False,
                    "options": [],
                    "refresh": 1,
                },
                _query_variable(
                    "namespace", "Namespace", "idaas_bridge_spool_max_bytes", scoped_by=(), multi=False
                ),
                _query_variable(
                    "job", "Release (job)", "idaas_bridge_spool_max_bytes", scoped_by=release[:1], multi=False
                ),
                _query_variable("pod", "Pod", "idaas_bridge_spool_max_bytes", scoped_by=release, multi=True),
                _query_variable(
                    "webhook", "Webhook", "idaas_bridge_failure_streak", scoped_by=release, multi=True
                ),
            ]
        },
        "panels": _layout(_panels()),
    }


def dashboard_json() -> str:
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


# --- files ------------------------------------------------------------------------------------------------


def generated_files(runbook_url: str | None = None) -> dict[Path, str]:
    """Repository-relative path -> content of every file this module generates."""
    url = runbook_url or project_runbook_url()
    board = dashboard_json()
    return {
        ALERTS: alerts_yaml(compose_target(url), COMPOSE_HEADER),
        CHART_ALERTS: alerts_yaml(chart_target(url), CHART_HEADER),
        DASHBOARD: board,
        CHART_DASHBOARD: board,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = tools.parser(__doc__)
    parser.add_argument(
        "--root", type=Path, default=ROOT, help="write under this directory (default: the repo)"
    )
    parser.add_argument(
        "--runbook-url",
        help="where docs/runbooks.md is published (default: the repository in pyproject.toml)",
    )
    args = parser.parse_args(argv)
    tools.write_files(generated_files(args.runbook_url), args.root)


if __name__ == "__main__":
    main()
