"""The whole story (issue 15) against the real broker and the fake Admin API: the bridge goes down, IDaaS
disables the webhook after 100 failed deliveries, the restarted bridge's watcher sees it at its first poll
and its opt-in re-enable restores it, the backfill publishes what IDaaS never delivered, and every event is
in Kafka exactly once, marked as delivered or backfilled."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from bridge.idaas_delivery import DISABLE_AFTER
from tests.e2e.harness import (
    BridgeProcess,
    consume_all,
    metric_value,
    signed_post,
    wait_for_metric,
    watched_bridge,
)
from tests.fake_admin_api import ServedFake
from tests.idaas_simulator import IdaasSimulator

pytestmark = pytest.mark.kafka

KINDS = ("user.created", "user.updated", "user.deleted")


def wait_for_log(bridge: BridgeProcess, text: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in bridge.log_path.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"no {text!r} in the log:\n{bridge.log_tail()}"
        time.sleep(0.2)


def test_outage_auto_disable_reenable_and_backfill_leave_every_event_in_kafka_exactly_once(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str, fake_admin_api: ServedFake
) -> None:
    bridge = watched_bridge(
        tmp_path, kafka_bootstrap, topic_prefix, fake_admin_api, reenable=True, reenable_test_wait_seconds=20
    )
    api = fake_admin_api.api
    hook = api.add_webhook(bridge.url("prod"), events=KINDS)
    api.on_test = lambda _hook: signed_post(bridge, b'{"id": "idaas-test-1", "type": "webhook.test"}')
    bridge.start()  # writes the dev certificate the simulator trusts
    idaas = IdaasSimulator(api, hook, bridge.tokens["prod"], bridge.workdir / "tls" / "dev-cert.pem")
    # Events "happened" a while ago: the backfill reads the audit log up to a margin before now.
    clock = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)

    def emit(count: int) -> None:
        nonlocal clock
        for index in range(count):
            idaas.emit(KINDS[index % 3], clock)
            clock += timedelta(seconds=1)

    try:
        emit(5)
        assert idaas.delivered == 5
        bridge.stop()  # the outage
        emit(DISABLE_AFTER)
        assert hook["enabled"] is False and idaas.streak == DISABLE_AFTER
        emit(3)  # while disabled: only in the audit log
        outage_end = clock

        bridge.start()  # recovered: the watcher's first poll sees the disabled webhook and re-enables it
        wait_for_log(bridge, "webhook prod is disabled in IDaaS")
        wait_for_metric(bridge, "idaas_bridge_webhook_reenables_total", 1, webhook="prod", result="reenabled")
        assert hook["enabled"] is True and api.updates[0]["callbackUrl"] == bridge.url("prod")
        assert metric_value(bridge.metrics(), "idaas_bridge_webhook_enabled", webhook="prod") == 1
        emit(3)
        assert idaas.delivered == 8
    finally:
        bridge.stop()

    start = (outage_end - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = bridge.cli("backfill", "--from", start, "--to", end)
    assert result.returncode == 0, result.stdout + result.stderr

    total = 5 + DISABLE_AFTER + 3 + 3
    messages = consume_all(kafka_bootstrap, [bridge.topics["user"]], expected=total, timeout=60)
    headers = [dict(message.headers() or []) for message in messages]
    assert len(messages) == total == len({h["idaas-fingerprint"] for h in headers})
    backfilled = [h for h in headers if h.get("idaas-source") == b"audit-backfill"]
    assert len(backfilled) == DISABLE_AFTER + 3 and all(h["idaas-audit-id"] for h in backfilled)
    delivered = [
        orjson.loads(m.value()) for m, h in zip(messages, headers, strict=True) if "idaas-source" not in h
    ]
    assert len(delivered) == 8 and not any("idaasBridgeBackfill" in value["data"] for value in delivered)
    audited = {event["entityId"] for event in api.audit_events}
    in_kafka = {orjson.loads(message.value())["data"]["entityId"] for message in messages}
    assert in_kafka == audited
