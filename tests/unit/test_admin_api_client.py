"""The Admin API client against the fake Admin API on loopback (TLS, schema-validated answers)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bridge.adminapi.client import ATTEMPTS, AdminApiClient, AdminApiError
from tests.fake_admin_api import ServedFake


class RecordedSleep:
    """Back-off waits, recorded instead of slept (the test asserts them)."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def client(fake: ServedFake, sleep: RecordedSleep | None = None) -> AdminApiClient:
    return AdminApiClient(fake.settings(), clock=fake.api.now, sleep=sleep or RecordedSleep())


def test_the_token_is_sent_raw_and_reused_until_shortly_before_it_expires(fake_admin_api: ServedFake) -> None:
    api = fake_admin_api.api
    api.add_webhook("https://bridge.example.com/webhooks/prod")
    admin = client(fake_admin_api)

    async def run() -> None:
        assert len(await admin.list_webhooks()) == 1
        await admin.list_webhooks()
        assert api.count("authenticate") == 1
        api.advance(api.token_lifetime_seconds - 30)  # inside the refresh margin, still valid
        await admin.list_webhooks()

    asyncio.run(run())
    assert api.count("authenticate") == 2
    listed = [header for name, header in api.calls if name == "list_webhooks"]
    assert all(header and not header.startswith("Bearer") and header in api.tokens for header in listed)
    assert not [name for name, _ in api.calls if name == "list_webhooks" and _ not in api.tokens]


def test_a_401_gets_one_new_token_and_one_more_try(fake_admin_api: ServedFake) -> None:
    api = fake_admin_api.api
    hook = api.add_webhook("https://bridge.example.com/webhooks/prod")
    admin = client(fake_admin_api)

    async def run() -> None:
        await admin.list_webhooks()
        api.revoke_tokens()
        assert (await admin.get_webhook(hook["id"]))["id"] == hook["id"]

    asyncio.run(run())
    assert [name for name, _ in api.calls] == [
        "authenticate",
        "list_webhooks",
        "get_webhook",
        "authenticate",
        "get_webhook",
    ]


def test_a_refused_secret_is_a_precise_error_without_the_secret(fake_admin_api: ServedFake) -> None:
    admin = client(fake_admin_api)
    fake_admin_api.api.shared_secret = "rotated-secret-abcdefghijklmnop"
    with pytest.raises(AdminApiError) as error:
        asyncio.run(admin.list_webhooks())
    assert error.value.reason == "unauthorized"
    assert "IDAAS_BRIDGE_ADMIN_API_SHARED_SECRET" in str(error.value)
    assert admin.settings.shared_secret not in str(error.value)


def test_429_and_5xx_are_retried_with_back_off_honouring_retry_after(fake_admin_api: ServedFake) -> None:
    api = fake_admin_api.api
    api.add_webhook("https://bridge.example.com/webhooks/prod")
    api.inject("list_webhooks", 429, retry_after="7")
    api.inject("list_webhooks", 503, times=2)
    sleep = RecordedSleep()
    assert len(asyncio.run(client(fake_admin_api, sleep).list_webhooks())) == 1
    assert sleep.waits == [7.0, 2.0, 4.0]
    assert api.count("list_webhooks") == 4


def test_a_tenant_that_stays_unavailable_is_an_error_after_every_attempt(fake_admin_api: ServedFake) -> None:
    api = fake_admin_api.api
    api.inject("list_webhooks", 502, times=ATTEMPTS)
    with pytest.raises(AdminApiError) as error:
        asyncio.run(client(fake_admin_api).list_webhooks())
    assert error.value.reason == "unavailable" and "HTTP 502" in str(error.value)
    assert api.count("list_webhooks") == ATTEMPTS


def test_an_answer_slower_than_the_timeout_is_abandoned_and_retried(fake_admin_api: ServedFake) -> None:
    api = fake_admin_api.api
    api.add_webhook("https://bridge.example.com/webhooks/prod")
    api.inject("list_webhooks", 0, delay=fake_admin_api.settings().request_timeout_seconds + 1.5)
    sleep = RecordedSleep()
    assert len(asyncio.run(client(fake_admin_api, sleep).list_webhooks())) == 1
    assert len(sleep.waits) == 1 and api.count("list_webhooks") == 2


def test_a_missing_permission_is_not_retried(fake_admin_api: ServedFake) -> None:
    api = fake_admin_api.api
    api.inject("list_webhooks", 403)
    with pytest.raises(AdminApiError) as error:
        asyncio.run(client(fake_admin_api).list_webhooks())
    assert error.value.reason == "forbidden" and "role" in str(error.value)
    assert api.count("list_webhooks") == 1


def test_put_test_and_audit_pages_round_trip(fake_admin_api: ServedFake) -> None:
    api = fake_admin_api.api
    hook = api.add_webhook("https://bridge.example.com/webhooks/prod", enabled=False)
    for _ in range(3):
        api.add_audit_event(eventCategory="MANAGEMENT", entityType="USERS", entityAction="ADD")
        api.advance(1)  # one event per second: ascending order is then the order they were added in
    admin = client(fake_admin_api)
    window = [{"name": "startTime", "operator": "GREATER_THAN_OR_EQUAL", "value": "2000-01-01T00:00:00Z"}]

    async def run() -> tuple[dict[str, object], list[dict[str, object]]]:
        parms = {"name": hook["name"], "callbackUrl": hook["callbackUrl"], "events": hook["events"]}
        updated = await admin.update_webhook(hook["id"], {**parms, "enabled": True})
        await admin.test_webhook(hook["id"])
        first = await admin.audit_events_page({"limit": 2, "searchByAttributes": window})
        second = await admin.audit_events_page({"cursor": first["paging"]["nextCursor"]})
        assert "nextCursor" not in second["paging"]
        return updated, first["results"] + second["results"]

    updated, events = asyncio.run(run())
    assert updated["enabled"] is True and api.tests_sent == [hook["id"]]
    assert [event["id"] for event in events] == [event["id"] for event in api.audit_events]


def test_no_secret_or_token_reaches_the_log(
    fake_admin_api: ServedFake, caplog: pytest.LogCaptureFixture
) -> None:
    api = fake_admin_api.api
    api.add_webhook("https://bridge.example.com/webhooks/prod")
    api.inject("list_webhooks", 500)
    admin = client(fake_admin_api)
    caplog.set_level(logging.DEBUG)

    async def run() -> None:
        await admin.list_webhooks()
        api.revoke_tokens()
        await admin.list_webhooks()

    asyncio.run(run())
    issued = [header for _, header in api.calls if header]
    logged = "\n".join(f"{record.getMessage()} {vars(record)}" for record in caplog.records)
    assert "admin api token obtained" in logged and "retrying" in logged
    assert fake_admin_api.settings().shared_secret not in logged
    assert issued and not any(token in logged for token in issued)
