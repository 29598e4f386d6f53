"""The test suite's IDaaS simulator runs the bridge's own model of IDaaS (bridge/idaas_delivery.py) against
the fake Admin API: the fake reports the webhook disabled once the model disables it, later events reach
only the audit log, a re-enable through the Admin API starts a new streak, and a 5xx is retried."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from bridge.adminapi.client import AdminApiClient
from bridge.adminapi.reenable import update_parms
from bridge.idaas_delivery import AutoDisableModel
from tests.fake_admin_api import ServedFake
from tests.idaas_simulator import IdaasSimulator
from tests.ports import free_port

TOKEN = "prod-token-0123456789"


def admin_api(fake: ServedFake, call: str, *args: Any) -> Any:
    """One Admin API operation through the bridge's own client, as the watcher would make it."""

    async def run() -> Any:
        return await getattr(AdminApiClient(fake.settings()), call)(*args)

    return asyncio.run(run())


def enabled_in_idaas(fake: ServedFake) -> bool:
    (hook,) = admin_api(fake, "list_webhooks")
    return bool(hook["enabled"])


def test_the_fake_reports_the_webhook_disabled_once_the_model_disables_it(
    fake_admin_api: ServedFake,
) -> None:
    api = fake_admin_api.api
    hook = api.add_webhook(f"https://127.0.0.1:{free_port()}/webhooks/prod")  # nothing listens: bridge down
    idaas = IdaasSimulator(api, hook, TOKEN, fake_admin_api.ca_file, model=AutoDisableModel(disable_after=3))
    now = datetime.now(UTC)
    idaas.emit("user.created", now)
    idaas.emit("user.created", now)
    assert idaas.streak == 2 and enabled_in_idaas(fake_admin_api)
    idaas.emit("user.created", now)
    assert idaas.streak == 3 and not enabled_in_idaas(fake_admin_api)
    idaas.emit("user.updated", now)  # disabled: audited, never sent
    assert len(api.audit_events) == 4 and idaas.delivered == 0 and idaas.streak == 3

    admin_api(fake_admin_api, "update_webhook", hook["id"], update_parms(hook))  # an admin re-enables it
    idaas.emit("user.deleted", now)
    assert idaas.streak == 1 and enabled_in_idaas(fake_admin_api)  # a new streak, not the 4th failure


def test_a_5xx_is_retried_and_the_delivery_counts_once(fake_admin_api: ServedFake) -> None:
    api = fake_admin_api.api
    # The callback is one of the fake's own routes: it answers 503 once (injected), then 401 (no token).
    hook = api.add_webhook(f"https://127.0.0.1:{fake_admin_api.port}/api/web/v1/webhooks/test/any")
    api.inject("test_webhook", 503)
    idaas = IdaasSimulator(api, hook, TOKEN, fake_admin_api.ca_file)
    idaas.emit("user.created", datetime.now(UTC))
    assert api.count("test_webhook") == 2  # the 503 retried, the 401 not
    assert idaas.streak == 1 and idaas.delivered == 0 and hook["enabled"]
