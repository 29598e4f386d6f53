"""Guarded re-enable (opt-in, `admin_api.reenable`): turn a webhook IDaaS disabled back on, safely.

Only when IDaaS reports it disabled and not expired, only while this bridge is healthy (it can make
deliveries durable: Kafka answers and the spool has room), at most `reenable_max_per_hour` attempts an hour
(never flapping against a path that is still broken). Unless `reenable_test_wait_seconds` is 0, IDaaS is
first asked for its test delivery (`POST /webhooks/test/{id}`), and the webhook is re-enabled only once a
delivery to it was answered 2xx after that request: the path from IDaaS through the ingress to the bridge
is proven end to end. The update is a `PUT` of the webhook as just read back from IDaaS (name, callback
URL, events with their filters) with `enabled: true`; nothing comes from local configuration, so a
re-enable can never point the webhook elsewhere. Every step is logged and counted
(`idaas_bridge_webhook_reenables_total`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Final

from bridge import metrics
from bridge.adminapi.client import AdminApiClient, AdminApiError
from bridge.config import AdminApiSettings
from bridge.guard import AutoDisableGuard

log = logging.getLogger(__name__)

RATE_WINDOW_SECONDS: Final = 3600.0
#: How often the arrival of the test delivery is checked while waiting for it.
TEST_CHECK_INTERVAL_SECONDS: Final = 0.2


def update_parms(webhook: dict[str, Any]) -> dict[str, Any] | None:
    """The PUT body that re-enables `webhook` exactly as read back, or None when the read-back lacks a
    field the PUT requires (name, callbackUrl)."""
    name, url = webhook.get("name"), webhook.get("callbackUrl")
    if not isinstance(name, str) or not name or not isinstance(url, str) or not url:
        return None
    events = [
        {key: event[key] for key in ("type", "filter") if key in event}
        for event in webhook.get("events") or []
        if isinstance(event, dict)
    ]
    return {"name": name, "callbackUrl": url, "events": events, "enabled": True}


class ReEnabler:
    def __init__(
        self,
        settings: AdminApiSettings,
        client: AdminApiClient,
        guard: AutoDisableGuard,
        healthy: Callable[[], bool],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._client = client
        self._guard = guard
        self._healthy = healthy
        self._clock = clock
        self._attempts: deque[float] = deque()
        #: Called with (webhook, re-enabled at) after a confirmed re-enable (the backfill of the gap).
        self.on_reenabled: Callable[[str, float], None] | None = None

    async def reenable(self, webhook: str, remote_id: str) -> str:
        """Try once; the result is also the metric's label (see the module docstring for the guards)."""
        result = await self._attempt(webhook, remote_id)
        metrics.WEBHOOK_REENABLES.labels(webhook=webhook, result=result).inc()
        level = logging.WARNING if result == "reenabled" else logging.INFO
        log.log(level, f"webhook re-enable: {result}", extra={"webhook": webhook, "idaas_id": remote_id})
        return result

    async def _attempt(self, webhook: str, remote_id: str) -> str:
        if not self._healthy():
            return "unhealthy"
        now = self._clock()
        while self._attempts and self._attempts[0] <= now - RATE_WINDOW_SECONDS:
            self._attempts.popleft()
        if len(self._attempts) >= self._settings.reenable_max_per_hour:
            return "rate_limited"
        self._attempts.append(now)
        try:
            current = await self._client.get_webhook(remote_id)
            if current.get("expired") is True:
                return "expired"
            if current.get("enabled") is True:
                return "already_enabled"
            parms = update_parms(current)
            if parms is None:
                return "incomplete"
            if self._settings.reenable_test_wait_seconds > 0 and not await self._test_delivered(
                webhook, remote_id
            ):
                return "test_not_received"
            updated = await self._client.update_webhook(remote_id, parms)
        except AdminApiError as exc:
            log.warning(
                "webhook re-enable failed",
                extra={"webhook": webhook, "reason": exc.reason, "error": str(exc)},
            )
            return "failed"
        if updated.get("enabled") is not True:
            return "not_confirmed"
        if self.on_reenabled is not None:
            self.on_reenabled(webhook, self._clock())
        return "reenabled"

    async def _test_delivered(self, webhook: str, remote_id: str) -> bool:
        """Ask IDaaS for its test delivery; True once a delivery to `webhook` was answered 2xx after that."""
        asked = self._clock()
        await self._client.test_webhook(remote_id)
        deadline = asked + self._settings.reenable_test_wait_seconds
        while self._clock() < deadline:
            if self._guard.last_success.get(webhook, 0.0) >= asked:
                return True
            await asyncio.sleep(TEST_CHECK_INTERVAL_SECONDS)
        return self._guard.last_success.get(webhook, 0.0) >= asked
