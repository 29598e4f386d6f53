"""Guarded re-enable against the fake Admin API: only when disabled, not expired and the bridge healthy,
after the test delivery arrived, with the read-back webhook, a few times an hour."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest
from prometheus_client import REGISTRY

from bridge.adminapi.client import AdminApiClient
from bridge.adminapi.reenable import ReEnabler, update_parms
from bridge.guard import AutoDisableGuard
from tests.fake_admin_api import ServedFake

URL = "https://bridge.example.com/webhooks/prod"


def reenabler(
    fake: ServedFake, guard: AutoDisableGuard, healthy: bool = True, wait: float = 5.0, per_hour: int = 3
) -> ReEnabler:
    settings = replace(
        fake.settings(), reenable=True, reenable_test_wait_seconds=wait, reenable_max_per_hour=per_hour
    )
    return ReEnabler(settings, AdminApiClient(settings), guard, lambda: healthy)


def deliver_test_to(guard: AutoDisableGuard) -> Any:
    """The fake's test call 'delivers' the dummy payload: the bridge answers it 2xx."""
    return lambda hook: guard.record("prod", 200, 0.01, well_formed=True)


def count(result: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "idaas_bridge_webhook_reenables_total", {"webhook": "prod", "result": result}
        )
        or 0.0
    )


def test_a_disabled_webhook_is_re_enabled_with_its_read_back_values_after_the_test_arrived(
    fake_admin_api: ServedFake,
) -> None:
    api = fake_admin_api.api
    hook = api.add_webhook(URL, name="Prod SIEM", events=("user.created", "passkey.created"), enabled=False)
    hook["events"][1]["filter"] = '[{"enrollmentDesignId":"fd1d1b86"}]'
    guard = AutoDisableGuard(["prod"])
    api.on_test = deliver_test_to(guard)
    reenabled: list[str] = []
    subject = reenabler(fake_admin_api, guard)
    subject.on_reenabled = lambda webhook, when: reenabled.append(webhook)
    before = count("reenabled")
    assert asyncio.run(subject.reenable("prod", hook["id"])) == "reenabled"
    assert api.tests_sent == [hook["id"]] and hook["enabled"] is True and reenabled == ["prod"]
    assert api.updates == [
        {
            "name": "Prod SIEM",
            "callbackUrl": URL,
            "events": [
                {"type": "user.created"},
                {"type": "passkey.created", "filter": hook["events"][1]["filter"]},
            ],
            "enabled": True,
        }
    ]
    assert count("reenabled") == before + 1


def test_no_test_delivery_means_no_re_enable(fake_admin_api: ServedFake) -> None:
    api = fake_admin_api.api
    hook = api.add_webhook(URL, enabled=False)
    result = asyncio.run(
        reenabler(fake_admin_api, AutoDisableGuard(["prod"]), wait=0.5).reenable("prod", hook["id"])
    )
    assert result == "test_not_received"
    assert api.updates == [] and hook["enabled"] is False


@pytest.mark.parametrize(
    ("healthy", "expired", "result"), [(False, False, "unhealthy"), (True, True, "expired")]
)
def test_an_unhealthy_bridge_or_an_expired_webhook_is_left_alone(
    fake_admin_api: ServedFake, healthy: bool, expired: bool, result: str
) -> None:
    api = fake_admin_api.api
    hook = api.add_webhook(URL, enabled=False)
    hook["expired"] = expired
    guard = AutoDisableGuard(["prod"])
    api.on_test = deliver_test_to(guard)
    assert (
        asyncio.run(reenabler(fake_admin_api, guard, healthy=healthy).reenable("prod", hook["id"])) == result
    )
    assert api.updates == [] and api.tests_sent == []


def test_attempts_are_limited_per_hour(fake_admin_api: ServedFake) -> None:
    api = fake_admin_api.api
    hook = api.add_webhook(URL, enabled=False)
    subject = reenabler(fake_admin_api, AutoDisableGuard(["prod"]), wait=0.2, per_hour=2)

    async def run() -> list[str]:
        return [await subject.reenable("prod", hook["id"]) for _ in range(3)]

    assert asyncio.run(run()) == ["test_not_received", "test_not_received", "rate_limited"]
    assert len(api.tests_sent) == 2


def test_the_put_body_never_invents_what_the_read_back_lacks() -> None:
    assert update_parms({"id": "w", "callbackUrl": URL, "enabled": False}) is None
    assert update_parms({"id": "w", "name": "n", "callbackUrl": URL}) == {
        "name": "n",
        "callbackUrl": URL,
        "events": [],
        "enabled": True,
    }
