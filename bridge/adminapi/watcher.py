"""The webhook watcher: reads the webhooks' state from IDaaS and exports it, so a disabled, expiring or
deleted webhook is seen (events IDaaS never sends cannot be guarded at the receiver).

Each configured webhook is matched to the IDaaS webhook whose `callbackUrl` is its public callback URL
(bridge.config.Settings.callback_url), compared without case in the scheme and host, a default port or a
trailing slash. The state is read every `admin_api.webhook_poll_seconds`, and at once when the bridge's own
failure streak reaches its warning level or a webhook has had no successful delivery for
`admin_api.quiet_poll_seconds`. Nothing is changed in IDaaS here; with `admin_api.reenable` a disabled
webhook is handed to the guarded re-enable (bridge/adminapi/reenable.py), and with
`admin_api.backfill_automatic` every webhook that comes back enabled has its gap backfilled, and the first
read after a start schedules the backfill of the bridge's own downtime (bridge/adminapi/recovery.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from bridge import metrics
from bridge.adminapi.client import AdminApiClient, AdminApiError, parse_time
from bridge.adminapi.recovery import AutoBackfill
from bridge.adminapi.reenable import ReEnabler
from bridge.config import Settings
from bridge.events.catalog import BY_NAME, SPEC_WEBHOOK_TYPES
from bridge.guard import AutoDisableGuard

log = logging.getLogger(__name__)

DEFAULT_PORTS: Final = {"https": 443, "http": 80}
#: An expiry closer than this is flagged: alert IdaasBridgeWebhookExpiresSoon, and `idaas-bridge webhooks`.
EXPIRY_WARNING_DAYS: Final = 14


def same_url(left: str, right: str) -> bool:
    """Whether two callback URLs name the same endpoint (scheme and host without case, default port)."""

    def key(url: str) -> tuple[str, str, int | None, str, str]:
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        port = parts.port or DEFAULT_PORTS.get(scheme)
        return scheme, (parts.hostname or "").lower(), port, parts.path.rstrip("/") or "/", parts.query

    return key(left) == key(right)


@dataclass(frozen=True)
class WebhookState:
    """One configured webhook as IDaaS sees it; `remote` is the IDaaS webhook, None when none matched."""

    name: str
    callback_url: str
    remote: dict[str, Any] | None

    @property
    def registered(self) -> bool:
        return self.remote is not None

    @property
    def enabled(self) -> bool:
        return self.remote is not None and self.remote.get("enabled") is True

    @property
    def expired(self) -> bool:
        return self.remote is not None and self.remote.get("expired") is True

    @property
    def expiry_timestamp(self) -> float | None:
        """When IDaaS expires the webhook; None when it never does (or is not registered)."""
        expiry = None if self.remote is None else self.remote.get("expiryDate")
        if not isinstance(expiry, str) or not expiry:
            return None
        try:
            return parse_time(expiry).timestamp()
        except ValueError:
            return None

    @property
    def subscribed_types(self) -> tuple[str, ...]:
        events = None if self.remote is None else self.remote.get("events")
        if not events:
            return SPEC_WEBHOOK_TYPES  # no list: IDaaS sends all available events
        return tuple(str(event.get("type")) for event in events if isinstance(event, dict))

    @property
    def unknown_types(self) -> tuple[str, ...]:
        return tuple(sorted({kind for kind in self.subscribed_types if kind not in BY_NAME}))

    @property
    def status(self) -> str:
        if self.remote is None:
            return "not registered"
        if self.expired:
            return "expired"
        return "enabled" if self.enabled else "disabled"


def match(settings: Settings, remote: Sequence[dict[str, Any]]) -> list[WebhookState]:
    """Each configured webhook with the IDaaS webhook whose callback URL is its public URL."""
    states = []
    for hook in settings.webhooks:
        url = settings.callback_url(hook)
        found = next((item for item in remote if same_url(str(item.get("callbackUrl", "")), url)), None)
        states.append(WebhookState(hook.name, url, found))
    return states


def unmatched(states: Iterable[WebhookState], remote: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The IDaaS webhooks no configured webhook matched (another consumer's, or a stale URL)."""
    matched = {id(state.remote) for state in states if state.remote is not None}
    return [item for item in remote if id(item) not in matched]


def export(states: Iterable[WebhookState]) -> None:
    for state in states:
        metrics.WEBHOOK_REGISTERED.labels(webhook=state.name).set(int(state.registered))
        metrics.WEBHOOK_ENABLED.labels(webhook=state.name).set(int(state.enabled))
        metrics.WEBHOOK_EXPIRED.labels(webhook=state.name).set(int(state.expired))
        metrics.WEBHOOK_EXPIRY.labels(webhook=state.name).set(state.expiry_timestamp or 0)
        metrics.WEBHOOK_UNKNOWN_TYPES.labels(webhook=state.name).set(len(state.unknown_types))


class WebhookWatcher:
    def __init__(
        self,
        settings: Settings,
        client: AdminApiClient,
        guard: AutoDisableGuard,
        clock: Callable[[], float] = time.time,
        reenabler: ReEnabler | None = None,
        recovery: AutoBackfill | None = None,
    ) -> None:
        self._settings = settings
        self._reenabler = reenabler
        self._recovery = recovery
        if reenabler is not None and recovery is not None:
            reenabler.on_reenabled = self._reenabled
        self._admin = settings.admin_api
        self._client = client
        self._guard = guard
        self._clock = clock
        self._wake = asyncio.Event()
        self._last_poll = -math.inf
        #: The states of the last successful read (the re-enable step and `webhooks` use them).
        self.states: list[WebhookState] = []
        guard.on_warning = self.poke
        metrics.WEBHOOK_CHECKS.labels(result="ok")

    def poke(self, webhook: str) -> None:
        """Read the state at once: `webhook`'s failure streak reached the warning level."""
        log.info("failure streak warning; reading the webhooks' state now", extra={"webhook": webhook})
        self._wake.set()

    async def check(self) -> list[WebhookState] | None:
        """Read and export the state once; None (logged and counted) when the Admin API failed."""
        self._last_poll = self._clock()
        try:
            remote = await self._client.list_webhooks()
        except AdminApiError as exc:
            metrics.WEBHOOK_CHECKS.labels(result=exc.reason).inc()
            log.warning("could not read the webhooks' state", extra={"reason": exc.reason, "error": str(exc)})
            return None
        states = match(self._settings, remote)
        export(states)
        metrics.WEBHOOK_CHECKS.labels(result="ok").inc()
        metrics.WEBHOOK_LAST_CHECK.set(self._clock())
        for state in states:
            if state.status != "enabled" or state.unknown_types:
                log.warning(
                    f"webhook {state.name} is {state.status} in IDaaS",
                    extra={
                        "webhook": state.name,
                        "callback_url": state.callback_url,
                        "status": state.status,
                        "unknown_event_types": list(state.unknown_types),
                    },
                )
        self.states = states
        if self._recovery is not None:
            for state in states:
                self._recovery.observed(state.name, state.status == "enabled", state.subscribed_types)
        if self._reenabler is not None:
            for state in states:
                if state.status == "disabled" and state.remote is not None:
                    result = await self._reenabler.reenable(state.name, str(state.remote.get("id", "")))
                    if result == "reenabled":  # confirmed by IDaaS's answer to the PUT
                        metrics.WEBHOOK_ENABLED.labels(webhook=state.name).set(1)
        return states

    def _reenabled(self, webhook: str, at: float) -> None:
        """The re-enable step turned `webhook` on at `at`: its gap is backfilled."""
        assert self._recovery is not None
        state = next(state for state in self.states if state.name == webhook)
        self._recovery.recovered(webhook, at, state.subscribed_types)

    def seconds_until_due(self) -> float:
        """Until the next regular read, or until a webhook crosses the quiet threshold (whichever first)."""
        now = self._clock()
        due = self._last_poll + self._admin.webhook_poll_seconds
        for last in self._guard.last_success.values():
            quiet_at = last + self._admin.quiet_poll_seconds
            if quiet_at > self._last_poll:  # not yet read since this webhook went quiet
                due = min(due, quiet_at)
        return max(0.0, due - now)

    async def run(self) -> None:
        """Read the state now and whenever it is due, until cancelled."""
        while True:
            self._wake.clear()
            await self.check()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.seconds_until_due())
