"""A real Prometheus scrapes two running bridges as two releases (the same job in namespaces staging and prod,
as two installs of the chart under one Prometheus) under a short load; every PromQL expression of the
Grafana dashboard and of the alert rules is evaluated through Prometheus's HTTP API and must return data,
and every alert expression must keep the two releases apart.

Alert expressions only return series while they fire, so each is evaluated in its data form: comparisons
against a number get PromQL's `bool` modifier (0/1 per series) and `absent(x)` becomes `x`. A typo in a
metric name, a label that does not exist or a wrong function then shows up as an empty result.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import httpx
import orjson
import pytest
import yaml

from bridge.config import ADMIN_API_SECRET_ENV
from tests.e2e.harness import BridgeProcess, free_port
from tests.fake_admin_api import ServedFake
from tests.kafka_broker import create_topics
from tests.promql_exprs import PromQLExpr, alert_exprs, dashboard_exprs
from tests.signing import idaas_headers
from tests.tools import tool

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[2]
JOB = "idaas-siem-bridge"
COMPARISON_WITH_NUMBER = re.compile(r"(==|!=|>=|<=|>|<)\s*(?=\d)")
ABSENT = re.compile(r"^\s*absent\((?P<inner>.*)\)\s*$", re.DOTALL)


def data_form(expr: str) -> str:
    """The expression that returns a series wherever the alert could fire (see the module docstring)."""
    absent = ABSENT.match(expr)
    if absent:
        return absent.group("inner")
    return COMPARISON_WITH_NUMBER.sub(lambda m: f"{m.group(1)} bool ", expr)


def test_data_form_rewrites_thresholds_and_absent() -> None:
    assert data_form('absent(up{job="x"})') == 'up{job="x"}'
    assert data_form("a > 6 * 3600") == "a > bool 6 * 3600"
    assert data_form('rate(x{code=~"5.."}[5m]) >= 0.5') == 'rate(x{code=~"5.."}[5m]) >= bool 0.5'


def send(
    bridge: BridgeProcess, client: httpx.Client, body: bytes, token: str = "prod-token-1-0123456789"
) -> int:
    headers = idaas_headers(token, bridge.url(), body)
    return client.post("/webhooks/prod", content=body, headers=headers).status_code


#: The namespaces of the two releases.
RELEASES: Final = ("staging", "prod")


def with_admin_api(bridge: BridgeProcess, fake: ServedFake) -> BridgeProcess:
    """The bridge reads its webhook's state from the fake Admin API, where the webhook expires in 30 days
    and subscribes to an event type the catalog lacks: every Admin API series then has data."""
    admin = fake.settings()
    bridge.extra_environment[ADMIN_API_SECRET_ENV] = admin.shared_secret
    bridge.overrides["server.public_base_url"] = bridge.base_url  # the callback URL it is found by
    bridge.overrides["admin_api"] = {
        "hostname": admin.hostname,
        "application_id": admin.application_id,
        "ca_file": admin.ca_file,
    }
    expiry = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 30 * 86400))
    fake.api.add_webhook(bridge.url("prod"), events=("user.created", "credential.print"), expiry_date=expiry)
    return bridge


@pytest.fixture
def scraped_bridges(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str, fake_admin_api: ServedFake
) -> Iterator[tuple[dict[str, BridgeProcess], str]]:
    prometheus_binary = tool("prometheus", "deploy/tools/install-promtool.sh")
    bridges = {
        namespace: with_admin_api(
            BridgeProcess(
                workdir=tmp_path / namespace, bootstrap=kafka_bootstrap, topic_prefix=topic_prefix, tls=False
            ),
            fake_admin_api,
        )
        for namespace in RELEASES
    }
    create_topics(kafka_bootstrap, list(bridges["prod"].topics.values()))
    port = free_port()
    # Kubernetes service discovery sets namespace and pod; one scrape config per release, both relabelled to
    # the same job, as two installs of the chart with the same release name would be.
    scrape_configs = [
        {
            "job_name": f"{namespace}-bridge",
            "static_configs": [
                {
                    "targets": [f"127.0.0.1:{bridge.ops_port}"],
                    "labels": {"namespace": namespace, "pod": f"idaas-siem-bridge-{namespace}-0"},
                }
            ],
            "relabel_configs": [{"target_label": "job", "replacement": JOB}],
        }
        for namespace, bridge in bridges.items()
    ]
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": scrape_configs,
            }
        )
    )
    for bridge in bridges.values():
        bridge.start()
    prometheus = subprocess.Popen(
        [
            prometheus_binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "prometheus.log").open("wb"),
    )
    try:
        yield bridges, f"http://127.0.0.1:{port}"
    finally:
        prometheus.terminate()
        prometheus.wait(10)
        for bridge in bridges.values():
            bridge.stop()


def query(api: str, expr: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{api}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert answer["status"] == "success", (expr, answer)
    return list(answer["data"]["result"])


def load(bridge: BridgeProcess, samples: list[dict[str, Any]], *, wrong_tokens: bool) -> None:
    """Six rounds of every sample type, an authenticated dead letter and, if asked, a request with a wrong
    token per round."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with bridge.client() as client:
        for round_number in range(6):
            for sample in samples:
                body = orjson.dumps({**sample, "id": f"{sample['id']}-{round_number}", "eventTime": now})
                assert send(bridge, client, body) == 200
            assert send(bridge, client, b'{"id": "x"') == 202  # authenticated, invalid: dead letter
            if wrong_tokens:
                assert send(bridge, client, orjson.dumps(samples[0]), token="wrong") == 401
            time.sleep(1.0)


def test_every_dashboard_and_alert_expression_returns_data_per_release(
    scraped_bridges: tuple[dict[str, BridgeProcess], str],
) -> None:
    bridges, api = scraped_bridges
    samples = orjson.loads((ROOT / "bridge/events/samples.json").read_bytes())
    # Only prod sees wrong tokens: its auth-failure series must not show up under staging.
    threads = [
        threading.Thread(target=load, args=(bridge, samples), kwargs={"wrong_tokens": namespace == "prod"})
        for namespace, bridge in bridges.items()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    deadline = time.monotonic() + 30
    while len(query(api, f'up{{job="{JOB}"}} == 1')) < len(bridges):
        assert time.monotonic() < deadline, "Prometheus never scraped both bridges"
        time.sleep(0.5)
    time.sleep(3)
    exprs: list[PromQLExpr] = dashboard_exprs() + [
        PromQLExpr(e.source, data_form(e.expr)) for e in alert_exprs()
    ]
    empty = [f"{e.source}: {e.expr}" for e in exprs if not query(api, e.expr)]
    assert empty == [], "expressions that returned no data:\n" + "\n".join(empty)

    # Each alert's series belong to one release: no result lacks the namespace, and only prod has auth
    # failures. Summed across the releases, a result would carry no namespace at all.
    for alert in alert_exprs():
        namespaces = [series["metric"].get("namespace") for series in query(api, data_form(alert.expr))]
        expected = {"prod"} if "auth_failures" in alert.expr else set(RELEASES)
        if alert.source == "alert IdaasBridgeAbsent":  # `up` itself: one series per scraped bridge
            expected = set(RELEASES)
        assert set(namespaces) == expected, f"{alert.source}: namespaces {namespaces}"
