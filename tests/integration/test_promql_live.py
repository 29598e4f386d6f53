"""A real Prometheus scrapes a running bridge under a short load; every PromQL expression of the Grafana
dashboard and of the alert rules is evaluated through Prometheus's HTTP API and must return data.

Alert expressions only return series while they fire, so each is evaluated in its data form: comparisons
against a number get PromQL's `bool` modifier (0/1 per series) and `absent(x)` becomes `x`. A typo in a
metric name, a label that does not exist or a wrong function then shows up as an empty result.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.e2e.harness import BridgeProcess, free_port
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


def send(bridge: BridgeProcess, client: httpx.Client, body: bytes, token: str = "prod-token-1") -> int:
    headers = idaas_headers(token, bridge.url(), body)
    return client.post("/webhooks/prod", content=body, headers=headers).status_code


@pytest.fixture
def scraped_bridge(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str
) -> Iterator[tuple[BridgeProcess, str]]:
    prometheus_binary = tool("prometheus", "deploy/tools/install-promtool.sh")
    bridge = BridgeProcess(
        workdir=tmp_path / "bridge", bootstrap=kafka_bootstrap, topic_prefix=topic_prefix, tls=False
    )
    create_topics(kafka_bootstrap, list(bridge.topics.values()))
    bridge.start()
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        f"global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n"
        f"scrape_configs:\n  - job_name: {JOB}\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{bridge.ops_port}']}}]\n"
    )
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
        yield bridge, f"http://127.0.0.1:{port}"
    finally:
        prometheus.terminate()
        prometheus.wait(10)
        bridge.stop()


def query(api: str, expr: str) -> list[object]:
    answer = httpx.get(f"{api}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert answer["status"] == "success", (expr, answer)
    return list(answer["data"]["result"])


def test_every_dashboard_and_alert_expression_returns_data(scraped_bridge: tuple[BridgeProcess, str]) -> None:
    bridge, api = scraped_bridge
    samples = orjson.loads((ROOT / "bridge/events/samples.json").read_bytes())
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with bridge.client() as client:
        for round_number in range(6):
            for sample in samples:
                body = orjson.dumps({**sample, "id": f"{sample['id']}-{round_number}", "eventTime": now})
                assert send(bridge, client, body) == 200
            assert (
                send(
                    bridge,
                    client,
                    b'{"id": "x"',
                )
                == 202
            )  # authenticated, invalid: dead letter
            assert send(bridge, client, orjson.dumps(samples[0]), token="wrong") == 401
            time.sleep(1.0)
    deadline = time.monotonic() + 30
    while not query(api, f'up{{job="{JOB}"}} == 1'):
        assert time.monotonic() < deadline, "Prometheus never scraped the bridge"
        time.sleep(0.5)
    time.sleep(3)
    exprs: list[PromQLExpr] = dashboard_exprs() + [
        PromQLExpr(e.source, data_form(e.expr)) for e in alert_exprs()
    ]
    empty = [f"{e.source}: {e.expr}" for e in exprs if not query(api, e.expr)]
    assert empty == [], "expressions that returned no data:\n" + "\n".join(empty)
