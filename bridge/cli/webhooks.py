"""`idaas-bridge webhooks`: the configured webhooks as IDaaS sees them (through the Admin API)."""

from __future__ import annotations

import asyncio
import time

from bridge.adminapi.client import AdminApiClient, AdminApiError, require_configured
from bridge.adminapi.watcher import EXPIRY_WARNING_DAYS, WebhookState, match, unmatched
from bridge.cli.command import Command
from bridge.cli.exits import EXIT_FAILED, EXIT_OK, CommandError
from bridge.config import Settings


def expiry_text(state: WebhookState, now: float) -> str:
    expiry = state.expiry_timestamp
    if expiry is None:
        return "never" if state.registered else "-"
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(expiry))
    days = (expiry - now) / 86400
    if days < 0:
        return f"{when} (passed)"
    soon = " SOON" if days < EXPIRY_WARNING_DAYS else ""
    return f"{when} (in {days:.0f} days){soon}"


def webhooks(settings: Settings) -> int:
    """Print each configured webhook's state, expiry and unknown event types; exit 1 unless all are
    registered, enabled and not expiring within EXPIRY_WARNING_DAYS."""
    require_configured(
        settings.admin_api, "`webhooks` reads the webhooks' state through the IDaaS Administration API"
    )
    client = AdminApiClient(settings.admin_api)
    try:
        remote = asyncio.run(client.list_webhooks())
    except AdminApiError as exc:
        raise CommandError(
            f"Admin API at {settings.admin_api.hostname}: {exc}",
            "check admin_api and the application's role (docs/operations.md)",
        ) from None
    states = match(settings, remote)
    now = time.time()
    healthy = True
    row = "{:<20} {:<15} {:<38} {} {}"
    print(row.format("WEBHOOK", "STATE", "EXPIRES", "IDAAS-ID", "CALLBACK-URL"))
    for state in states:
        expiry = state.expiry_timestamp
        healthy &= state.status == "enabled" and (
            expiry is None or expiry - now >= EXPIRY_WARNING_DAYS * 86400
        )
        remote_id = state.remote.get("id", "?") if state.remote is not None else "-"
        print(row.format(state.name, state.status, expiry_text(state, now), remote_id, state.callback_url))
        if state.unknown_types:
            print(f"{'':<20} subscribes to types the catalog does not know: {', '.join(state.unknown_types)}")
    for other in unmatched(states, remote):
        print(row.format("(not configured)", "", "", other.get("id", "?"), other.get("callbackUrl", "")))
    return EXIT_OK if healthy else EXIT_FAILED


COMMAND = Command(
    description=(
        "Read the webhooks from the IDaaS Administration API (admin_api) and show, for each configured "
        "webhook, the IDaaS webhook with its public callback URL: its state, its expiry and the event "
        "types it subscribes to that the bridge does not know. Exit 1 when one is not registered, "
        f"disabled, expired or expires within {EXPIRY_WARNING_DAYS} days."
    ),
    add_arguments=lambda parser: None,
    run=lambda settings, args: webhooks(settings),
)
