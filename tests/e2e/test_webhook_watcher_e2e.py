"""The webhook watcher in the real daemon: it reads the fake Admin API, exports the webhook's state, and
reads it again at once when the bridge's own failure streak warns (long before the regular interval)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.guard import STREAK_WARNING
from tests.e2e.harness import metric_value, signed_post, wait_for_metric, watched_bridge
from tests.fake_admin_api import ServedFake

pytestmark = pytest.mark.kafka


#: With two workers the watcher runs in worker 0 and the streak (and the test delivery) may be counted in
#: worker 1: the shared streak, its warning relay and the shared last-success time carry it over.
WORKERS = pytest.mark.parametrize("workers", [1, 2])


@WORKERS
def test_the_daemon_exports_the_webhook_state_and_rereads_it_when_its_streak_warns(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str, fake_admin_api: ServedFake, workers: int
) -> None:
    bridge = watched_bridge(tmp_path, kafka_bootstrap, topic_prefix, fake_admin_api)
    bridge.overrides["server.workers"] = workers
    hook = fake_admin_api.api.add_webhook(bridge.url("prod"))
    bridge.start()
    try:
        wait_for_metric(bridge, "idaas_bridge_webhook_enabled", 1, webhook="prod")
        assert metric_value(bridge.metrics(), "idaas_bridge_webhook_registered", webhook="prod") == 1
        assert fake_admin_api.api.count("list_webhooks") == 1

        hook["enabled"] = False  # IDaaS disabled it; the next regular read is an hour away
        good_token = bridge.tokens["prod"]
        bridge.tokens["prod"] = "a-rotated-token-not-the-bridges"  # IDaaS signs with a token we lack: 401s
        for _ in range(STREAK_WARNING):
            assert signed_post(bridge, b'{"id": "x"}').status_code == 401
        bridge.tokens["prod"] = good_token
        wait_for_metric(bridge, "idaas_bridge_webhook_enabled", 0, webhook="prod")
        assert fake_admin_api.api.count("list_webhooks") == 2

        result = bridge.cli("webhooks")
        assert result.returncode == 1, result.stderr
        assert "disabled" in result.stdout and hook["id"] in result.stdout
    finally:
        bridge.stop()


@WORKERS
def test_the_daemon_re_enables_a_disabled_webhook_once_the_test_delivery_arrived(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str, fake_admin_api: ServedFake, workers: int
) -> None:
    bridge = watched_bridge(
        tmp_path, kafka_bootstrap, topic_prefix, fake_admin_api, reenable=True, reenable_test_wait_seconds=20
    )
    bridge.overrides["server.workers"] = workers
    api = fake_admin_api.api
    hook = api.add_webhook(bridge.url("prod"), enabled=False)
    # IDaaS's test call sends a dummy payload to the callback URL, signed with the webhook's token.
    api.on_test = lambda _hook: signed_post(bridge, b'{"id": "test-1", "type": "webhook.test"}')
    bridge.start()
    try:
        wait_for_metric(bridge, "idaas_bridge_webhook_reenables_total", 1, webhook="prod", result="reenabled")
        assert hook["enabled"] is True and api.tests_sent == [hook["id"]]
        assert api.updates[0]["callbackUrl"] == hook["callbackUrl"] and api.updates[0]["enabled"] is True
    finally:
        bridge.stop()
